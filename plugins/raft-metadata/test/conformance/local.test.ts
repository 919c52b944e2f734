/** The MetadataService conformance suite against the local (single-node, logged) service. */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { metadataServiceSuite } from '@dfs/api/testing'
import type { MetadataServiceHarness } from '@dfs/api/testing'
import { LocalMetadataService } from '../../src/local/index.js'
import { silentLogger } from '../transport/libp2p-network.js'

metadataServiceSuite('local', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'dfs-meta-suite-'))
  const nodeId = 'node-1'
  const open = async (): Promise<LocalMetadataService> => {
    const s = new LocalMetadataService({ dir: join(dir, 'meta'), nodeId, logger: silentLogger })
    await s.start()
    return s
  }
  const harness: MetadataServiceHarness = {
    service: await open(),
    nodeId,
    reopen: async () => {
      await harness.service.stop()
      harness.service = await open()
      return harness.service
    },
    cleanup: async () => {
      await harness.service.stop().catch(() => {})
      await rm(dir, { recursive: true, force: true })
    }
  }
  return harness
})
