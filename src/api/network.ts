import type { Stream } from '@libp2p/interface'
import type { CallOptions } from './options.js'
import type { PeerIdString } from './metadata.js'

/**
 * The slice of the node's libp2p host that plugins may use: protocol handlers and streams to peers
 * by PeerId. Every stream is Noise-authenticated: `peer` in a handler is the identity the remote
 * proved. Plugins build their own protocols on it (e.g. `/dfs/raft/1.0.0`) without importing the core.
 */
export interface PeerNetwork {
  /** This node's PeerId. */
  readonly self: PeerIdString
  handle: (protocol: string, handler: (stream: Stream, peer: PeerIdString) => void, options?: { maxInboundStreams?: number }) => Promise<void>
  unhandle: (protocol: string) => Promise<void>
  /** Opens a stream to `peer`, dialling it with the addresses known for it if not connected. */
  openStream: (peer: PeerIdString, protocol: string, options?: CallOptions) => Promise<Stream>
  /** Records addresses (multiaddr strings) at which `peer` can be dialled. */
  addAddresses: (peer: PeerIdString, addrs: string[]) => Promise<void>
}
