import { logger } from '@libp2p/logger'
import { peerIdFromString } from '@libp2p/peer-id'
import type { Multiaddr } from '@multiformats/multiaddr'
import type { AbortOptions, Connection, Libp2p, PeerId } from '@libp2p/interface'
import { AbortedError, InvalidArgumentError, NotFoundError, type CallOptions } from '@dfs/api'
import { parseAddress } from '../net/address.js'
import {
  BOOTSTRAP_DIAL_TIMEOUT_MS_DEFAULT, BOOTSTRAP_PEERS_MAX, BOOTSTRAP_RETRY_MS_DEFAULT, BOOTSTRAP_RETRY_MS_MAX,
  FIND_PEER_TIMEOUT_MS_DEFAULT, TIMEOUT_MS_MAX
} from './constants.js'

const log = logger('dfs:membership:discovery')

/** First pause between two DHT lookups of a member that was not found yet; doubles up to 1 s. */
const FIND_RETRY_MS_FIRST = 50
const FIND_RETRY_MS_MAX = 1000

export interface FindMemberOptions extends CallOptions {
  /** Deadline of the whole lookup, retries included (default 10000). */
  timeoutMs?: number
  /**
   * Answer from the local peer store or routing table if they know the member (default false: ask
   * the network, because after a restart on another port the local addresses are stale).
   */
  useCache?: boolean
}

export interface MemberAddresses {
  id: string
  addrs: Multiaddr[]
}

/**
 * Finds a member's current addresses by PeerId through the Kad-DHT (`peerRouting.findPeer`): the
 * closest peers to its id answer with the addresses they know, so a member that restarted elsewhere
 * is found again through any node it reconnected to. Lookups that find nothing are retried, with
 * backoff, until the deadline. The addresses found are also merged into the peer store by libp2p.
 *
 * Throws InvalidArgument (not a PeerId), NotFound (the deadline passed and no node told the member's
 * addresses; evidence: the deadline, the attempts and the last error), or Aborted (`options.signal`).
 */
export async function findMember (host: Pick<Libp2p, 'peerId' | 'peerRouting' | 'getMultiaddrs'>, member: string | PeerId, options: FindMemberOptions = {}): Promise<MemberAddresses> {
  let id: PeerId
  try {
    id = typeof member === 'string' ? peerIdFromString(member) : member
  } catch {
    throw new InvalidArgumentError(`${JSON.stringify(member)} is not a PeerId`, { member: String(member) })
  }
  const timeoutMs = options.timeoutMs ?? FIND_PEER_TIMEOUT_MS_DEFAULT
  checkTimeout('timeoutMs', timeoutMs)
  if (options.signal?.aborted === true) throw new AbortedError()
  if (id.equals(host.peerId)) return { id: id.toString(), addrs: host.getMultiaddrs() }

  const deadline = AbortSignal.timeout(timeoutMs)
  const signal = options.signal == null ? deadline : AbortSignal.any([options.signal, deadline])
  const started = performance.now()
  let attempts = 0
  let lastError: unknown
  let pauseMs = FIND_RETRY_MS_FIRST
  while (true) {
    attempts++
    try {
      const info = await host.peerRouting.findPeer(id, { signal, useCache: options.useCache ?? false })
      if (info.multiaddrs.length > 0) {
        log('found %p at %s after %d attempt(s)', id, info.multiaddrs.map(String).join(' '), attempts)
        return { id: id.toString(), addrs: info.multiaddrs }
      }
      lastError = new Error('found without addresses')
    } catch (err) {
      lastError = err
      log.trace('lookup %d of %p failed - %e', attempts, id, err)
    }
    const elapsedMs = performance.now() - started
    if (isAborted(options.signal)) throw new AbortedError('the lookup was aborted', { member: id.toString(), attempts })
    if (deadline.aborted || elapsedMs + pauseMs >= timeoutMs) {
      const message = lastError instanceof Error ? lastError.message : String(lastError)
      throw new NotFoundError(`no node told the addresses of member ${id.toString()} within ${timeoutMs} ms (${attempts} lookups)`,
        { member: id.toString(), timeoutMs, attempts, lastError: message })
    }
    await sleep(pauseMs, signal)
    pauseMs = Math.min(pauseMs * 2, FIND_RETRY_MS_MAX)
  }
}

export interface BootstrapInit {
  /** `--peers`: `host:port` or multiaddrs (with or without `/p2p/<id>`). */
  peers: string[]
  /** Deadline of one dial (default 5000). */
  dialTimeoutMs?: number
  /** First pause before retrying an unreachable peer; doubles per failure (default 1000). */
  retryMs?: number
  /** Longest pause between two attempts (default 30000). */
  retryMsMax?: number
  /** Stops the dialler when aborted. */
  signal?: AbortSignal
}

export interface BootstrapResult {
  address: string
  /** The PeerId that answered at the address (Noise proved it). */
  peer?: string
  /** Why the dial failed (its error's name and message). */
  error?: { name: string, message: string }
}

type BootstrapHost = Pick<Libp2p, 'peerId' | 'dial' | 'getConnections' | 'getMultiaddrs'>

interface Target {
  address: Multiaddr
  text: string
  peer: PeerId | undefined
  /** The address is this node itself: never dialled again. */
  self: boolean
  failures: number
  nextAttemptMs: number
  dialling: boolean
}

/**
 * Dials the bootstrap peers of `--peers` and keeps them connected: each address is dialled at
 * start, and again (with exponential backoff) whenever it is unreachable or its connection closed.
 * Addresses without a PeerId are accepted: the dial learns it. Addresses that turn out to be this
 * node (a `--peers` list shared by every node) are skipped.
 */
export class BootstrapDialler {
  readonly dialTimeoutMs: number
  readonly retryMs: number
  readonly retryMsMax: number
  readonly #host: BootstrapHost
  readonly #targets: Target[]
  readonly #signal: AbortSignal | undefined
  #running: { controller: AbortController, timer?: ReturnType<typeof setTimeout>, onAbort?: () => void } | undefined

  /** Parses every address first: a bad one throws InvalidArgument naming it, and nothing is dialled. */
  constructor (host: BootstrapHost, init: BootstrapInit) {
    if (!Array.isArray(init.peers)) throw new InvalidArgumentError('peers must be a list of addresses')
    if (init.peers.length > BOOTSTRAP_PEERS_MAX) {
      throw new InvalidArgumentError(`at most ${BOOTSTRAP_PEERS_MAX} bootstrap peers are accepted, got ${init.peers.length}`, { count: init.peers.length })
    }
    this.dialTimeoutMs = init.dialTimeoutMs ?? BOOTSTRAP_DIAL_TIMEOUT_MS_DEFAULT
    this.retryMs = init.retryMs ?? BOOTSTRAP_RETRY_MS_DEFAULT
    this.retryMsMax = init.retryMsMax ?? Math.max(BOOTSTRAP_RETRY_MS_MAX, this.retryMs)
    checkTimeout('dialTimeoutMs', this.dialTimeoutMs)
    checkTimeout('retryMs', this.retryMs)
    checkTimeout('retryMsMax', this.retryMsMax)
    if (this.retryMsMax < this.retryMs) throw new InvalidArgumentError('retryMsMax must be at least retryMs', { retryMs: this.retryMs, retryMsMax: this.retryMsMax })
    this.#host = host
    this.#signal = init.signal
    const seen = new Set<string>()
    this.#targets = []
    for (const input of init.peers) {
      const address = parseAddress(input)
      const text = address.toString()
      if (seen.has(text)) continue
      seen.add(text)
      const peerText = address.getComponents().find((c) => c.name === 'p2p')?.value
      const peer = peerText == null ? undefined : peerIdFromString(peerText)
      this.#targets.push({ address, text, peer, self: peer?.equals(host.peerId) ?? false, failures: 0, nextAttemptMs: 0, dialling: false })
    }
  }

  /** The parsed addresses, in the order given (duplicates removed). */
  get addresses (): string[] {
    return this.#targets.map((t) => t.text)
  }

  /** Bootstrap peers with an open connection now. */
  connectedPeers (): string[] {
    return this.#targets.filter((t) => !t.self && t.peer != null && this.#host.getConnections(t.peer).length > 0)
      .map((t) => (t.peer as PeerId).toString())
  }

  /** Dials every address once, in parallel; the result says who answered where, or why not. */
  async dialAll (options: AbortOptions = {}): Promise<BootstrapResult[]> {
    return Promise.all(this.#targets.map(async (t) => this.#dial(t, options.signal)))
  }

  /** Dials all now, then keeps retrying the unreachable ones in the background until stop(). */
  start (): void {
    if (this.#running != null) return
    if (this.#signal?.aborted === true) return
    const controller = new AbortController()
    this.#running = { controller }
    if (this.#signal != null) {
      const onAbort = (): void => { this.stop() }
      this.#signal.addEventListener('abort', onAbort, { once: true })
      this.#running.onAbort = onAbort
    }
    this.#round()
  }

  stop (): void {
    const running = this.#running
    if (running == null) return
    this.#running = undefined
    running.controller.abort()
    if (running.timer != null) clearTimeout(running.timer)
    if (running.onAbort != null) this.#signal?.removeEventListener('abort', running.onAbort)
  }

  #round (): void {
    const running = this.#running
    if (running == null) return
    const now = performance.now()
    for (const t of this.#targets) {
      if (t.self || t.dialling || t.nextAttemptMs > now) continue
      if (t.peer != null && this.#host.getConnections(t.peer).length > 0) continue
      void this.#dial(t, running.controller.signal)
    }
    // check every retryMs: a closed connection is noticed (and re-dialled) within that time
    running.timer = setTimeout(() => { this.#round() }, this.retryMs)
    running.timer.unref?.()
  }

  async #dial (t: Target, signal: AbortSignal | undefined): Promise<BootstrapResult> {
    if (t.self) return { address: t.text, peer: this.#host.peerId.toString() }
    if (this.#isOwnAddress(t.address)) {
      t.self = true
      log('skipping bootstrap address %s: it is this node', t.text)
      return { address: t.text, peer: this.#host.peerId.toString() }
    }
    t.dialling = true
    const timeout = AbortSignal.timeout(this.dialTimeoutMs)
    try {
      const connection: Connection = await this.#host.dial(t.address, { signal: signal == null ? timeout : AbortSignal.any([signal, timeout]) })
      if (connection.remotePeer.equals(this.#host.peerId)) {
        t.self = true
        await connection.close().catch(() => {})
        return { address: t.text, peer: this.#host.peerId.toString() }
      }
      if (t.peer != null && !t.peer.equals(connection.remotePeer)) {
        // libp2p checks a /p2p/ id itself; this is a bug if it ever happens
        throw new Error(`expected ${t.peer.toString()} at ${t.text}, found ${connection.remotePeer.toString()}`)
      }
      t.peer = connection.remotePeer
      t.failures = 0
      t.nextAttemptMs = 0
      log('connected to bootstrap peer %p at %s', connection.remotePeer, t.text)
      return { address: t.text, peer: connection.remotePeer.toString() }
    } catch (err) {
      t.failures++
      const waitMs = Math.min(this.retryMs * 2 ** Math.min(t.failures - 1, 30), this.retryMsMax)
      t.nextAttemptMs = performance.now() + waitMs
      const name = timeout.aborted ? 'DeadlineExceeded' : signal?.aborted === true ? 'Aborted' : String((err as Error)?.name ?? 'Error')
      log('bootstrap peer %s unreachable (%s: %s), next attempt in %d ms', t.text, name, (err as Error)?.message, waitMs)
      return { address: t.text, error: { name, message: String((err as Error)?.message ?? err) } }
    } finally {
      t.dialling = false
    }
  }

  #isOwnAddress (address: Multiaddr): boolean {
    const bare = (ma: Multiaddr): string => ma.toString().replace(/\/p2p\/[^/]+$/, '')
    const target = bare(address)
    return this.#host.getMultiaddrs().some((own) => bare(own) === target)
  }
}

function isAborted (signal: AbortSignal | undefined): boolean {
  return signal?.aborted === true
}

function checkTimeout (name: string, value: number): void {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1 || value > TIMEOUT_MS_MAX) {
    throw new InvalidArgumentError(`${name} must be an integer number of milliseconds from 1 to ${TIMEOUT_MS_MAX}`, { option: name, value })
  }
}

async function sleep (ms: number, signal: AbortSignal): Promise<void> {
  await new Promise<void>((resolve) => {
    if (signal.aborted) { resolve(); return }
    const timer = setTimeout(() => { signal.removeEventListener('abort', onAbort); resolve() }, ms)
    const onAbort = (): void => { clearTimeout(timer); resolve() }
    signal.addEventListener('abort', onAbort, { once: true })
  })
}
