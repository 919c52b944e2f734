import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { ServiceRegistry } from '@dfs/api'
import type { Logger } from '@dfs/api'
import hook from '../../src/hooks/services.js'
import { LevelExtentStore } from '../../src/index.js'

const logger: Logger = Object.assign(() => {}, { error: () => {}, trace: () => {}, enabled: false })

test('the dfs:services hook provides the extent store "level"', async () => {
  const registry = new ServiceRegistry()
  // oclif calls a hook with its context as `this`; this hook does not use it
  await (hook as unknown as (opts: { registry: ServiceRegistry }) => Promise<void>).call({}, { registry })
  assert.equal(registry.names('extentStore'), ['level'])

  const dir = await mkdtemp(join(tmpdir(), 'dfs-level-hook-'))
  try {
    const store = registry.get('extentStore', 'level')({ dir, logger })
    assert.instance(store, LevelExtentStore)
    await store.open()
    assert.equal(await store.usage(), { extents: 0, bytes: 0 })
    await store.close()
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})

test.run()
