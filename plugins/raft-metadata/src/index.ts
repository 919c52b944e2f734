export * from './state-machine/index.js'
export * from './local/index.js'
export { encodeOp, decodeOp, encodeCbor, decodeCbor } from './codec.js'
// TODO: export * from './raft/index.js' once the Raft core (src/raft/index.ts) exists.
