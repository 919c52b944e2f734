import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { gossipsub, type GossipSub } from '@libp2p/gossipsub'
import { identify } from '@libp2p/identify'
import { kadDHT, passthroughMapper, type KadDHT } from '@libp2p/kad-dht'
import { ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import { createLibp2p, type Libp2p } from 'libp2p'
import type { ConnectionGater, PeerInfo, PrivateKey } from '@libp2p/interface'
import type { HandlerRegistrar } from './admission.js'
import { coalescingWrites } from './coalesce-writes.js'
import { installQuietLengthPrefixedDecoder } from './lp-decoder.js'
import { installYamuxHalfWindowUpdates } from './yamux-window.js'
import {
  CONNECTION_EARLY_STREAMS_MAX, CONNECTION_INBOUND_STREAMS_MAX, CONNECTIONS_MAX, INBOUND_CONNECTIONS_PER_SECOND_MAX, INBOUND_PENDING_CONNECTIONS_MAX,
  PROTOCOL_PREFIX, STREAM_WINDOW_BYTES, STREAM_WINDOW_BYTES_MAX
} from './constants.js'

/** Kad-DHT protocol id of dfs: its own prefix, so a dfs node never joins (or answers) the public IPFS DHT. */
export const DHT_PROTOCOL = `/${PROTOCOL_PREFIX}/kad/1.0.0`

/** Keeps private addresses (dfs runs on loopback and LANs); empties those of filtered-out peers. */
function dhtMapper (filter: HostInit['dhtPeerFilter']): (peer: PeerInfo) => PeerInfo {
  if (filter == null) return passthroughMapper
  return (peer) => filter(peer.id.toString()) ? passthroughMapper(peer) : { ...peer, multiaddrs: [] }
}

/** `node`: a cluster member (gossipsub + kad-dht in server mode); `client`: a CLI user that only dials. */
export type HostRole = 'node' | 'client'

export interface HostInit {
  privateKey: PrivateKey
  /** Multiaddrs to listen on; none for a client. */
  listen?: string[]
  connectionGater?: ConnectionGater
  /**
   * A libp2p service factory that wraps the registrar's protocol handlers (Admission.streamGate):
   * installed before any service starts, so every handler, libp2p's own included, goes through it.
   */
  streamGate?: (components: { registrar: HandlerRegistrar }) => object
  /** False for a peer the DHT must not keep or tell others about (Admission.mayJoinDht). */
  dhtPeerFilter?: (peer: string) => boolean
  /** Which services the host runs; `client` (the default) keeps the host minimal. */
  role?: HostRole
}

/** The services of a node host: a client's, plus gossipsub (heartbeats ride it) and kad-dht (discovery). */
export type NodeServices = {
  identify: ReturnType<ReturnType<typeof identify>>
  ping: ReturnType<ReturnType<typeof ping>>
  pubsub: GossipSub
  dht: KadDHT
}

export type Host = Libp2p<{ identify: ReturnType<ReturnType<typeof identify>>, ping: ReturnType<ReturnType<typeof ping>> }>

/** A host built with `role: 'node'`. It is also a `Host`, so everything that takes a `Host` takes it. */
export type NodeHost = Libp2p<NodeServices>

/**
 * One libp2p host per process: TCP, Noise (the remote PeerId on a connection is proved by its key),
 * Yamux. Nodes listen and run gossipsub and kad-dht; CLI clients only dial.
 */
export async function createHost (init: HostInit & { role: 'node' }): Promise<NodeHost>
export async function createHost (init: HostInit): Promise<Host>
export async function createHost (init: HostInit): Promise<Host | NodeHost> {
  installYamuxHalfWindowUpdates()
  installQuietLengthPrefixedDecoder()
  const gate = init.streamGate == null ? {} : { streamGate: init.streamGate }
  const services = init.role === 'node'
    ? {
        ...gate,
        identify: identify(),
        ping: ping(),
        pubsub: gossipsub({
          // a lone node (or the first of a cluster) still publishes its heartbeat
          allowPublishToZeroTopicPeers: true,
          // every message is signed by its publisher's key, so `from` is authenticated
          globalSignaturePolicy: 'StrictSign',
          emitSelf: false
        }),
        dht: kadDHT({
          protocol: DHT_PROTOCOL,
          logPrefix: 'dfs:dht',
          datastorePrefix: `/${PROTOCOL_PREFIX}/dht`,
          metricsPrefix: `${PROTOCOL_PREFIX}_dht`,
          // nodes are dialable by assumption (they listen on the address the operator gave)
          clientMode: false,
          // dfs runs on loopback and private networks: keep their addresses in the routing table
          peerInfoMapper: dhtMapper(init.dhtPeerFilter)
        })
      }
    : {
        ...gate,
        identify: identify(),
        ping: ping()
      }
  const node = await createLibp2p({
    privateKey: init.privateKey,
    addresses: { listen: init.listen ?? [] },
    transports: [tcp()],
    connectionEncrypters: [coalescingWrites(noise())],
    streamMuxers: [yamux({
      maxInboundStreams: CONNECTION_INBOUND_STREAMS_MAX,
      maxEarlyStreams: CONNECTION_EARLY_STREAMS_MAX,
      streamOptions: {
        maxStreamWindowSize: STREAM_WINDOW_BYTES_MAX,
        // Yamux grows a stream's window only when it can measure a round trip, which on loopback
        // and fast LANs rounds to 0 ms, so the window stays at 256 KiB and a bulk transfer waits a
        // round trip per 256 KiB. Start where a 1 MiB DATA frame fits several times over.
        initialStreamWindowSize: STREAM_WINDOW_BYTES
      }
    })],
    connectionGater: {
      // dfs runs on loopback and private networks: allow dialling them
      denyDialMultiaddr: () => false,
      ...init.connectionGater
    },
    connectionManager: {
      // every CLI command is a new connection: libp2p's default of 5 per second per host refuses a
      // script that runs a few commands at once
      inboundConnectionThreshold: INBOUND_CONNECTIONS_PER_SECOND_MAX,
      maxIncomingPendingConnections: INBOUND_PENDING_CONNECTIONS_MAX,
      maxConnections: CONNECTIONS_MAX
    },
    services
  })
  return node
}
