import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify } from '@libp2p/identify'
import { ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import { createLibp2p, type Libp2p } from 'libp2p'
import type { ConnectionGater, PrivateKey } from '@libp2p/interface'

export interface HostInit {
  privateKey: PrivateKey
  /** Multiaddrs to listen on; none for a client. */
  listen?: string[]
  connectionGater?: ConnectionGater
}

export type Host = Libp2p<{ identify: ReturnType<ReturnType<typeof identify>>, ping: ReturnType<ReturnType<typeof ping>> }>

/**
 * One libp2p host per process: TCP, Noise (the remote PeerId on a connection is proved by its key),
 * Yamux. Nodes listen; CLI clients only dial.
 */
export async function createHost (init: HostInit): Promise<Host> {
  const node = await createLibp2p({
    privateKey: init.privateKey,
    addresses: { listen: init.listen ?? [] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionGater: {
      // dfs runs on loopback and private networks: allow dialling them
      denyDialMultiaddr: () => false,
      ...init.connectionGater
    },
    services: {
      identify: identify(),
      ping: ping()
    }
  })
  return node as unknown as Host
}
