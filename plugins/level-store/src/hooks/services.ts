import type { Hook } from '@oclif/core'
import { LevelExtentStore } from '../level-extent-store.js'

/** Provides the LevelDB extent store as `level` (`dfs node start --store level`). */
const hook: Hook<'dfs:services'> = async function (opts) {
  opts.registry.provide('extentStore', 'level', (init) => new LevelExtentStore(init))
}

export default hook
