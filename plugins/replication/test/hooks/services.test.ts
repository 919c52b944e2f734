import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { ServiceRegistry } from '@dfs/api'
import type { Logger } from '@dfs/api'
import hook from '../../src/hooks/services.js'
import { DefaultPlacement, DefaultRebalance } from '../../src/index.js'

const logger: Logger = Object.assign(() => {}, { error: () => {}, trace: () => {}, enabled: false })

test('the dfs:services hook provides placement "default" and rebalance "default"', async () => {
  const registry = new ServiceRegistry()
  // oclif calls a hook with its context as `this`; this hook does not use it
  await (hook as unknown as (opts: { registry: ServiceRegistry }) => Promise<void>).call({}, { registry })
  assert.equal(registry.names('placement'), ['default'])
  assert.equal(registry.names('rebalance'), ['default'])
  assert.instance(registry.get('placement', 'default')({ logger }), DefaultPlacement)
  assert.instance(registry.get('rebalance', 'default')({ logger }), DefaultRebalance)
})

test.run()
