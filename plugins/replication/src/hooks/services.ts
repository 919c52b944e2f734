import type { Hook } from '@oclif/core'
import { DefaultPlacement } from '../policies/default-placement.js'
import { DefaultRebalance } from '../policies/default-rebalance.js'
import { DefaultReplication } from '../service/replication-service.js'

/** Provides the default replication service and the default placement and rebalancing policies, all named `default`. */
const hook: Hook<'dfs:services'> = async function (opts) {
  opts.registry.provide('placement', 'default', () => new DefaultPlacement())
  opts.registry.provide('rebalance', 'default', () => new DefaultRebalance())
  opts.registry.provide('replication', 'default', (init) => new DefaultReplication(init))
}

export default hook
