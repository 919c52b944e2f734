/**
 * Test support: real libp2p hosts on 127.0.0.1 (TCP + Noise + Yamux) and the PeerNetwork adapter a
 * node's runtime gives plugins, built here over a host (the plugin never imports core files).
 */
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromString } from '@libp2p/peer-id'
import { tcp } from '@libp2p/tcp'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'
import type { Libp2p, PrivateKey } from '@libp2p/interface'
import type { Logger, PeerNetwork } from '@dfs/api'

export interface TestHost {
  node: Libp2p
  network: PeerNetwork
  id: string
  /** Listen addresses with the /p2p/ suffix removed. */
  addrs: string[]
  port: number
  privateKey: PrivateKey
}

export async function newKey (): Promise<PrivateKey> {
  return await generateKeyPair('Ed25519')
}

export function networkOf (node: Libp2p): PeerNetwork {
  return {
    self: node.peerId.toString(),
    handle: async (protocol, handler, options) => {
      await node.handle(protocol, (stream, connection) => { handler(stream, connection.remotePeer.toString()) }, options)
    },
    unhandle: async (protocol) => { await node.unhandle(protocol) },
    openStream: async (peer, protocol, options) => {
      return await node.dialProtocol(peerIdFromString(peer), protocol, { signal: options?.signal, negotiateFully: false })
    },
    addAddresses: async (peer, addrs) => {
      await node.peerStore.merge(peerIdFromString(peer), { multiaddrs: addrs.map((a) => multiaddr(a)) })
    }
  }
}

/** Starts a host; pass the key and port of a stopped host to restart it as the same node. */
export async function startHost (privateKey?: PrivateKey, port = 0): Promise<TestHost> {
  const key = privateKey ?? await newKey()
  const node = await createLibp2p({
    privateKey: key,
    addresses: { listen: [`/ip4/127.0.0.1/tcp/${port}`] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionGater: { denyDialMultiaddr: () => false }
  })
  const addrs = node.getMultiaddrs().map((a) => a.toString().replace(/\/p2p\/.*$/, ''))
  const m = /\/tcp\/(\d+)/.exec(addrs[0] ?? '')
  if (m === null) throw new Error(`host listens on no TCP address: ${addrs.join(', ')}`)
  return { node, network: networkOf(node), id: node.peerId.toString(), addrs, port: Number(m[1]), privateKey: key }
}

/** Polls `cond` every 5 ms until it holds; throws naming `what` after `timeoutMs`. */
export async function waitFor (cond: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (await cond()) return
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}

export const silentLogger: Logger = Object.assign(() => {}, { error: () => {}, trace: () => {}, enabled: false })

/** A logger that prints with a prefix when DEBUG contains `dfs:` (for diagnosing a failing test). */
export function testLogger (prefix: string): Logger {
  if (!(process.env.DEBUG ?? '').includes('dfs:')) return silentLogger
  const log = (fmt: string, ...args: unknown[]): void => { console.error(`${prefix} ${fmt}`, ...args) }
  return Object.assign(log, { error: log, trace: () => {}, enabled: true })
}

/**
 * Wraps a test body so that a typed error escaping it is reported: uvu's reporter expects an error's
 * `details` to be a diff string and silently stops the suite on a DfsError's details object.
 */
export function plain<C> (fn: (ctx: C) => Promise<void>): (ctx: C) => Promise<void> {
  return async (ctx) => {
    try {
      await fn(ctx)
    } catch (err) {
      const e = err as Error & { details?: unknown }
      if (e !== null && typeof e === 'object' && e.details !== undefined && typeof e.details !== 'string') {
        const plainErr = new Error(`${e.name}: ${e.message} ${JSON.stringify(e.details)}`)
        plainErr.stack = `${plainErr.message}\n${e.stack ?? ''}`
        throw plainErr
      }
      throw err
    }
  }
}

/** Stops a libp2p host, ignoring errors (cleanup after a failed test). */
export async function stopQuietly (node: Libp2p | undefined): Promise<void> {
  try {
    await node?.stop()
  } catch {}
}
