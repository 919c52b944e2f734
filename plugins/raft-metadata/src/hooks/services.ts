import type { Hook } from '@oclif/core'
import type {} from '@dfs/api' // brings in the typing of the dfs:services hook
import { LocalMetadataService } from '../local/index.js'

/** Provides the single-node metadata service as `metadata` / `local`. */
const hook: Hook<'dfs:services'> = async function (opts) {
  opts.registry.provide('metadata', 'local', (init) => new LocalMetadataService(init))
}

export default hook
