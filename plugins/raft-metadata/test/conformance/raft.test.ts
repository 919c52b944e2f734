/**
 * The MetadataService conformance suite against the replicated (Raft) service on one node over a
 * real libp2p host: one data group, and the sharded layout (three data groups beside the system group).
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { metadataServiceSuite } from '@dfs/api/testing'
import type { MetadataServiceHarness } from '@dfs/api/testing'
import { RaftMetadataService } from '../../src/replicated/index.js'
import { startHost, stopQuietly, testLogger } from '../transport/libp2p-network.js'

function raftHarness (dataGroups: number): () => Promise<MetadataServiceHarness> {
  return async () => {
    const dir = await mkdtemp(join(tmpdir(), 'dfs-raft-suite-'))
    const host = await startHost()
    const open = async (): Promise<RaftMetadataService> => {
      const s = new RaftMetadataService({
        dir: join(dir, 'meta'),
        nodeId: host.id,
        logger: testLogger('[suite]'),
        network: host.network,
        peers: [{ id: host.id, addrs: host.addrs }],
        dataGroups,
        tickMs: 10
      })
      await s.start()
      return s
    }
    const harness: MetadataServiceHarness = {
      service: await open(),
      nodeId: host.id,
      reopen: async () => {
        await harness.service.stop()
        harness.service = await open()
        return harness.service
      },
      cleanup: async () => {
        await harness.service.stop().catch(() => {})
        await stopQuietly(host.node)
        await rm(dir, { recursive: true, force: true })
      }
    }
    return harness
  }
}

metadataServiceSuite('raft, one data group', raftHarness(1))
metadataServiceSuite('raft, sharded over three data groups', raftHarness(3))
