/** Raft messages between nodes over libp2p (`/dfs/raft/1.0.0`). */
export { RaftTransport, libp2pLink } from './raft-transport.js'
export type { FrameLink, FrameReceiver, FrameSink, GroupTransport, RaftTransportHandler, RaftTransportInit, RaftTransportStats } from './raft-transport.js'
export { encodeMessage, encodeFrame, decodeFrame, messageFromWire, isWireType } from './codec.js'
export type { DecodedFrame } from './codec.js'
export * from './constants.js'
