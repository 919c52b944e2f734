export * from './state-machine/index.js'
export * from './local/index.js'
export { RaftMetadataService } from './replicated/index.js'
export type { RaftMetadataServiceInit, RaftPeer } from './replicated/index.js'
export { encodeOp, decodeOp, encodeCbor, decodeCbor } from './codec.js'
// The Raft core itself is the subpath export `@dfs/raft-metadata/raft`.
