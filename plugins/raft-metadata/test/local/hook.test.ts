import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ServiceRegistry } from '@dfs/api'
import hook from '../../src/hooks/services.js'
import { LocalMetadataService } from '../../src/index.js'

test('the dfs:services hook provides metadata "local" and "raft"; "local" builds a working LocalMetadataService', async () => {
  const registry = new ServiceRegistry()
  await (hook as unknown as (opts: { registry: ServiceRegistry }) => Promise<void>).call({}, { registry })
  assert.equal(registry.names('metadata'), ['local', 'raft'])
  const factory = registry.get('metadata', 'local')
  const dir = await mkdtemp(join(tmpdir(), 'dfs-hook-'))
  try {
    const logger = Object.assign(() => {}, { error: () => {}, trace: () => {}, enabled: false })
    const service = factory({ dir: join(dir, 'meta'), nodeId: 'peer-1', logger })
    assert.ok(service instanceof LocalMetadataService)
    await service.start()
    const r = await service.propose({ type: 'PutMember', member: { id: 'peer-1', name: 'one', region: '', addrs: [] } })
    assert.is(r.index, 1)
    assert.equal(service.status(), { leader: 'peer-1', term: 1, commitIndex: 1, appliedIndex: 1 })
    await service.stop()
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})

test('the "raft" metadata service refuses to start without the node network', async () => {
  const registry = new ServiceRegistry()
  await (hook as unknown as (opts: { registry: ServiceRegistry }) => Promise<void>).call({}, { registry })
  const logger = Object.assign(() => {}, { error: () => {}, trace: () => {}, enabled: false })
  try {
    registry.get('metadata', 'raft')({ dir: '/nonexistent', nodeId: 'peer-1', logger })
    assert.unreachable()
  } catch (err: any) {
    assert.is(err.name, 'ConfigError')
  }
})

test.run()
