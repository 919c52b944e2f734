import { logger } from '@libp2p/logger'
import { peerIdFromString } from '@libp2p/peer-id'
import { parseMemberAddrs } from './member-addrs.js'
import { InvalidArgumentError, type CallOptions, type PeerNetwork } from '@dfs/api'
import type { Host } from './host.js'

const log = logger('dfs:net:peer-network')

export interface PeerNetworkInit {
  /**
   * Asked when a peer this host was not connected to cannot be dialled: finds its current addresses
   * (e.g. MemberLocator, through the DHT) and says whether a second dial is worth it.
   */
  locate?: (peer: string, options?: CallOptions) => Promise<boolean>
}

/** The PeerNetwork plugins see: the node's host, addressed by PeerId strings. */
export function peerNetwork (host: Host, init: PeerNetworkInit = {}): PeerNetwork {
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
    openStream: async (peer, protocol, options) => {
      const id = toPeerId(peer)
      const connected = host.getConnections(id).length > 0
      try {
        return await host.dialProtocol(id, protocol, { signal: options?.signal })
      } catch (err) {
        // only a failed dial means the addresses may be stale; a failure on a live connection does not
        if (connected || init.locate == null || options?.signal?.aborted === true) throw err
        if (!(await init.locate(peer, options))) throw err
        log('%s was not reachable (%s); dialling the addresses the DHT told', peer, (err as Error)?.message)
        return await host.dialProtocol(id, protocol, { signal: options?.signal })
      }
    },
    addAddresses: async (peer, addrs) => {
      // a member record's addresses are data from other nodes: the ones that do not parse are skipped
      const multiaddrs = parseMemberAddrs(peer, addrs)
      if (multiaddrs.length > 0) await host.peerStore.merge(toPeerId(peer), { multiaddrs })
    }
  }
}
