import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { ServiceRegistry } from '@dfs/api'
import type { Logger } from '@dfs/api'
import hook from '../../src/hooks/services.js'
import { RegionPlacement } from '../../src/index.js'

const logger: Logger = Object.assign(() => {}, { error: () => {}, trace: () => {}, enabled: false })

test('the dfs:services hook provides placement "region" and nothing else', async () => {
  const registry = new ServiceRegistry()
  await hook({ registry })
  assert.equal(registry.names('placement'), ['region'])
  assert.equal(registry.names('rebalance'), [])
  assert.instance(registry.get('placement', 'region')({ logger }), RegionPlacement)
})

test.run()
