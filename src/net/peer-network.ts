import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { InvalidArgumentError, type PeerNetwork } from '@dfs/api'
import type { Host } from './host.js'

/** The PeerNetwork plugins see: the node's host, addressed by PeerId strings. */
export function peerNetwork (host: Host): PeerNetwork {
  const toPeerId = (peer: string): ReturnType<typeof peerIdFromString> => {
    try {
      return peerIdFromString(peer)
    } catch {
      throw new InvalidArgumentError(`${JSON.stringify(peer)} is not a PeerId`, { peer })
    }
  }
  return {
    self: host.peerId.toString(),
    handle: async (protocol, handler, options) => {
      await host.handle(protocol, (stream, connection) => { handler(stream, connection.remotePeer.toString()) }, {
        maxInboundStreams: options?.maxInboundStreams,
        runOnLimitedConnection: false
      })
    },
    unhandle: async (protocol) => { await host.unhandle(protocol) },
    openStream: async (peer, protocol, options) => await host.dialProtocol(toPeerId(peer), protocol, { signal: options?.signal }),
    addAddresses: async (peer, addrs) => {
      await host.peerStore.merge(toPeerId(peer), { multiaddrs: addrs.map((a) => multiaddr(a)) })
    }
  }
}
