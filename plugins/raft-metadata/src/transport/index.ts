/** Raft messages between nodes over libp2p (`/dfs/raft/1.0.0`; large snapshots on `/dfs/raft-snapshot/1.0.0`). */
export { RaftTransport, libp2pLink } from './raft-transport.js'
export type { FrameLink, FrameReceiver, FrameSink, GroupTransport, RaftTransportHandler, RaftTransportInit, RaftTransportStats, StreamKind } from './raft-transport.js'
export {
  encodeMessage, encodeFrame, decodeFrame, messageFromWire, isWireType, encodeSnapshotChunk, decodeSnapshotChunk, decodeWireFrame
} from './codec.js'
export type { DecodedFrame, SnapshotChunk, WireFrame } from './codec.js'
export { SnapshotReassembler, snapshotChunkFrames } from './snapshot-chunk.js'
export type { ChunkOutcome, SnapshotReassemblerInit } from './snapshot-chunk.js'
export * from './constants.js'
