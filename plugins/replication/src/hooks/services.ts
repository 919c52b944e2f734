import type { Hook } from '@oclif/core'
import { DefaultPlacement } from '../policies/default-placement.js'
import { DefaultRebalance } from '../policies/default-rebalance.js'

/** Provides the default placement and rebalancing policies, both named `default`. */
const hook: Hook<'dfs:services'> = async function (opts) {
  opts.registry.provide('placement', 'default', () => new DefaultPlacement())
  opts.registry.provide('rebalance', 'default', () => new DefaultRebalance())
}

export default hook
