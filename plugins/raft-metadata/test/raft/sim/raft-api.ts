/**
 * The one place the simulator imports the Raft core from, so an API difference is adapted here.
 */
export * from '../../../src/raft/types.js'
export { RawNode, MemoryStorage, encodeConfChange, decodeConfChange } from '../../../src/raft/index.js'
