import type { ServicesHookOptions } from '@dfs/api'
import { RegionPlacement } from '../region-placement.js'

/**
 * Provides the placement policy `region` (select it with `dfs cluster policy set placement region`).
 * Typed with @dfs/api alone: this plugin depends on nothing else of dfs.
 */
export default async function hook (opts: ServicesHookOptions): Promise<void> {
  opts.registry.provide('placement', 'region', () => new RegionPlacement())
}
