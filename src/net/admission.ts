/**
 * Connection admission of a node: who may connect, and which protocols they may open.
 *
 * A peer is a *member* (listed in the cluster's member records), a *known identity* (this node, or a
 * PeerId bound to a role), or a *stranger*. The issue asks that the gater admit "only members and
 * known identities, plus peers presenting a join token". A join token is presented over the RPC
 * protocol, after the connection is up: a joining node's PeerId is unknown to the cluster until that
 * call commits it as a member, and a new CLI user must reach a node to be told PermissionDenied. So a
 * stranger cannot be refused at the connection level outright; it is admitted in *restricted mode*:
 *
 * - it may open only OPEN_PROTOCOLS (the RPC protocol, where `cluster.join` is the one method open to
 *   it, plus identify and ping, which libp2p runs on every connection); every other inbound stream
 *   from it (Raft, kad, gossipsub …) is reset before its handler runs;
 * - at most `strangersMax` inbound stranger connections are open at once, and at most
 *   `strangersPerAddressMax` from one remote address (IP); the gater denies more;
 * - a stranger may have at most `strangerStreamsMax` RPC streams open at once (a join needs one or
 *   two; a peer with no role is refused on its first call anyway), so what it can make this node
 *   buffer is bounded by strangersMax × strangerStreamsMax stream windows;
 * - a stranger's connection is closed after `strangerLifetimeMs` unless the peer has become a member
 *   or a known identity by then; a call still in flight then (a join commits a membership change)
 *   defers the close, up to `strangerLifetimeMaxMs` in all;
 * - the DHT neither keeps it in its routing table nor tells others about it (`mayJoinDht`).
 *
 * Standing is read from this node's applied metadata, which starts after the host: until `attach`
 * gives the source, no peer can be judged, so connections are admitted (and timed like a stranger's,
 * then judged) and their restricted streams wait, bounded, for the answer instead of being refused.
 * A member therefore always gets in, however early it connects to a (re)starting node.
 */
import { logger } from '@libp2p/logger'
import { errorToWire, PermissionDeniedError } from '@dfs/api'
import type { Connection, ConnectionGater, MultiaddrConnection, PeerId, Stream, StreamHandler, StreamHandlerOptions } from '@libp2p/interface'
import { RPC_PROTOCOL } from './constants.js'
import { FramedStream, FrameKind } from './rpc/frames.js'

const log = logger('dfs:net:admission')

export type Standing = 'member' | 'known' | 'stranger'

/** Tells a peer's standing (sync or async); a throw counts as `stranger` for that question. */
export type StandingSource = (peer: string) => Standing | Promise<Standing>

/** libp2p's identify, identify-push and ping: run on every connection, and harmless from anyone. */
export const LIBP2P_BASE_PROTOCOLS = ['/ipfs/id/1.0.0', '/ipfs/id/push/1.0.0', '/ipfs/ping/1.0.0'] as const

/** The protocols a stranger may open. */
export const OPEN_PROTOCOLS: readonly string[] = [RPC_PROTOCOL, ...LIBP2P_BASE_PROTOCOLS]

/** Inbound stranger connections open at once. */
export const STRANGERS_MAX_DEFAULT = 16

/** Inbound stranger connections open at once from one remote address (IP). */
export const STRANGERS_PER_ADDRESS_MAX_DEFAULT = 4

/** RPC streams one stranger may have open at once (over all its connections). */
export const STRANGER_STREAMS_MAX_DEFAULT = 4

/** A stranger's connection is closed after this long unless it has become a member or known (or has a call in flight). */
export const STRANGER_LIFETIME_MS_DEFAULT = 10_000

/** A stranger's connection is closed after this long whatever it is doing. */
export const STRANGER_LIFETIME_MAX_MS_DEFAULT = 60_000

/** How often an expired stranger connection with a call in flight is looked at again. */
const BUSY_RECHECK_MS = 1_000

/** Strangers whose open RPC streams are counted (bounded: each has a connection, and those are capped). */
const STREAM_COUNTS_MAX = 4096

/** Longest a restricted stream waits for this node to be able to judge its peer (start-up only). */
export const STANDING_WAIT_MS_DEFAULT = 30_000

/** A restricted stream from an apparent stranger is judged again for this long before it is refused. */
export const STANDING_RECHECK_MS_DEFAULT = 3_000
const STANDING_RECHECK_EVERY_MS = 100

/** Peers whose last standing is remembered for `mayJoinDht`. */
const RECENT_PEERS_MAX = 1024

export interface AdmissionInit {
  /** This node's PeerId: always known. */
  self: string
  strangersMax?: number
  strangersPerAddressMax?: number
  strangerStreamsMax?: number
  strangerLifetimeMs?: number
  strangerLifetimeMaxMs?: number
  standingWaitMs?: number
  standingRecheckMs?: number
}

export interface AdmissionStats {
  /** Inbound connections refused because `strangersMax` stranger connections were open, or `strangersPerAddressMax` from its address. */
  connectionsDenied: number
  /** RPC streams of strangers refused because `strangerStreamsMax` were open. */
  strangerStreamsRefused: number
  /** Stranger connections closed when their lifetime ended. */
  connectionsExpired: number
  /** Inbound streams of restricted protocols refused (stranger, or never judged in time). */
  streamsRefused: number
}

interface Tracked {
  peer: string
  /** The remote IP (or host) the connection came from. */
  address: string
  maConn: MultiaddrConnection
  timer: ReturnType<typeof setTimeout>
  /** When the connection was admitted (ms, wall clock): `strangerLifetimeMaxMs` counts from here. */
  sinceMs: number
}

/** The remote host of a connection: its first IP or DNS component, else the whole address. */
export function remoteAddressOf (maConn: Pick<MultiaddrConnection, 'remoteAddr'>): string {
  try {
    const host = maConn.remoteAddr.getComponents().find((c) => ['ip4', 'ip6', 'dns', 'dns4', 'dns6'].includes(c.name))
    if (host?.value != null) return host.value
  } catch {}
  return String(maConn.remoteAddr)
}

/** The slice of libp2p's registrar that `streamGate` wraps: every protocol handler goes through it. */
export interface HandlerRegistrar {
  handle: (protocol: string, handler: StreamHandler, options?: StreamHandlerOptions) => Promise<void>
}

export class Admission {
  readonly self: string
  readonly strangersMax: number
  readonly strangersPerAddressMax: number
  readonly strangerStreamsMax: number
  readonly strangerLifetimeMs: number
  readonly strangerLifetimeMaxMs: number
  readonly standingWaitMs: number
  /** How long a restricted stream from an apparent stranger waits for this node's metadata to admit it. */
  readonly standingRecheckMs: number
  readonly stats: AdmissionStats = { connectionsDenied: 0, connectionsExpired: 0, streamsRefused: 0, strangerStreamsRefused: 0 }
  readonly #tracked = new Set<Tracked>()
  /** Open RPC streams per stranger (entries removed at zero). */
  readonly #streams = new Map<string, number>()
  /** Members told by the join reply, trusted until metadata lists them itself (see `trust`). */
  readonly #trusted = new Set<string>()
  readonly #ready: Promise<void>
  readonly #markReady: () => void
  /** The last standing told per peer (bounded): what the DHT's synchronous peer filter consults. */
  readonly #recent = new Map<string, Standing>()
  #source: StandingSource | undefined
  #callsInFlight: ((peer: string) => number) | undefined
  #stopped = false

  constructor (init: AdmissionInit) {
    this.self = init.self
    this.strangersMax = init.strangersMax ?? STRANGERS_MAX_DEFAULT
    this.strangersPerAddressMax = init.strangersPerAddressMax ?? Math.min(this.strangersMax, STRANGERS_PER_ADDRESS_MAX_DEFAULT)
    this.strangerStreamsMax = init.strangerStreamsMax ?? STRANGER_STREAMS_MAX_DEFAULT
    this.strangerLifetimeMs = init.strangerLifetimeMs ?? STRANGER_LIFETIME_MS_DEFAULT
    this.strangerLifetimeMaxMs = init.strangerLifetimeMaxMs ?? Math.max(this.strangerLifetimeMs, STRANGER_LIFETIME_MAX_MS_DEFAULT)
    this.standingWaitMs = init.standingWaitMs ?? STANDING_WAIT_MS_DEFAULT
    this.standingRecheckMs = init.standingRecheckMs ?? STANDING_RECHECK_MS_DEFAULT
    let markReady = (): void => {}
    this.#ready = new Promise<void>((resolve) => { markReady = resolve })
    this.#markReady = markReady
    for (const [name, value] of [['strangersMax', this.strangersMax], ['strangersPerAddressMax', this.strangersPerAddressMax],
      ['strangerStreamsMax', this.strangerStreamsMax], ['strangerLifetimeMs', this.strangerLifetimeMs],
      ['strangerLifetimeMaxMs', this.strangerLifetimeMaxMs], ['standingWaitMs', this.standingWaitMs]] as const) {
      if (!Number.isSafeInteger(value) || value < 1) throw new Error(`admission: ${name} must be a positive integer, got ${value}`)
    }
    if (this.strangerLifetimeMaxMs < this.strangerLifetimeMs) throw new Error('admission: strangerLifetimeMaxMs must be at least strangerLifetimeMs')
  }

  /** From now on standing is judged by `source` (the node's metadata); waiting streams are judged. */
  attach (source: StandingSource): void {
    this.#source = source
    this.#markReady()
  }

  /**
   * Peers to treat as members before metadata lists them: a joining node learns the members from the
   * join reply, and their Raft streams must be accepted while it catches up. Each is forgotten once
   * metadata lists it, so a later removal takes effect.
   */
  trust (peers: string[]): void {
    for (const p of peers) if (p !== this.self) this.#trusted.add(p)
  }

  /** The peer's standing now, or undefined while no source is attached. */
  async standing (peer: string): Promise<Standing | undefined> {
    if (peer === this.self) return 'known'
    const source = this.#source
    if (source == null) return undefined
    let standing: Standing
    try {
      standing = await source(peer)
    } catch (err) {
      log.error('could not tell the standing of %s: %s', peer, (err as Error)?.message)
      standing = 'stranger'
    }
    if (standing === 'member') this.#trusted.delete(peer)
    else if (this.#trusted.has(peer)) standing = 'member'
    this.#recent.delete(peer)
    this.#recent.set(peer, standing)
    while (this.#recent.size > RECENT_PEERS_MAX) this.#recent.delete(this.#recent.keys().next().value as string)
    return standing
  }

  /**
   * For the DHT (whose peer filter is synchronous): false for a peer last judged a stranger. Kad
   * keeps such a peer out of its routing table and out of the peers it tells others, so a stranger
   * is never handed to the cluster's members as a node to talk to.
   */
  mayJoinDht (peer: string): boolean {
    return this.#recent.get(peer) !== 'stranger'
  }

  /** Inbound connections admitted in restricted mode that are open now (from `address` only, when given). */
  strangerConnections (address?: string): number {
    if (address === undefined) return this.#tracked.size
    let n = 0
    for (const t of this.#tracked) if (t.address === address) n++
    return n
  }

  /** The gater half: caps and times inbound stranger connections. Compose it with others. */
  gater (): ConnectionGater {
    return {
      denyInboundUpgradedConnection: async (peerId: PeerId, maConn: MultiaddrConnection) => {
        const peer = peerId.toString()
        const standing = await this.standing(peer)
        if (standing === 'member' || standing === 'known') return false
        if (this.#stopped) return true
        await this.#prune()
        const address = remoteAddressOf(maConn)
        if (standing === 'stranger' && this.#tracked.size >= this.strangersMax) {
          this.stats.connectionsDenied++
          log('denying a connection from stranger %s: %d stranger connections are open', peer, this.#tracked.size)
          return true
        }
        if (standing === 'stranger' && this.strangerConnections(address) >= this.strangersPerAddressMax) {
          this.stats.connectionsDenied++
          log('denying a connection from stranger %s: %d stranger connections from %s are open', peer, this.strangersPerAddressMax, address)
          return true
        }
        this.#track(peer, address, maConn)
        return false
      }
    }
  }

  /**
   * The stream half, as a libp2p service factory: wraps the registrar's `handle` so that every
   * handler registered on the host (libp2p's own services included) first asks `admitStream`.
   * libp2p's stream middleware (`libp2p.use`) would be the natural hook, but in libp2p 3.3 it appends
   * the handler to the registered chain on every inbound stream (js-libp2p#3534), so it is not used.
   */
  streamGate (): (components: { registrar: HandlerRegistrar }) => object {
    return (components) => {
      const registrar = components.registrar
      const handle = registrar.handle.bind(registrar)
      registrar.handle = async (protocol, handler, options) => {
        await handle(protocol, async (stream, connection) => {
          if (!(await this.admitStream(protocol, stream, connection))) return
          await handler(stream, connection)
        }, options)
      }
      return {}
    }
  }

  /** True if the stream may reach its handler; otherwise the stream is reset and false returned. */
  async admitStream (protocol: string, stream: Stream, connection: Connection): Promise<boolean> {
    const peer = connection.remotePeer.toString()
    if (protocol === RPC_PROTOCOL) return await this.#admitOpenStream(peer, stream)
    if (OPEN_PROTOCOLS.includes(protocol)) return true
    let standing = await this.#standingWhenReady(peer)
    // A node that just joined talks to every member at once, and a member may open its stream a
    // moment before this node has applied the membership change that admits it: look again for a
    // short while before refusing (a stranger stays refused, only later).
    for (const deadline = Date.now() + this.standingRecheckMs; standing === 'stranger' && Date.now() < deadline && !this.#stopped;) {
      await new Promise((resolve) => setTimeout(resolve, STANDING_RECHECK_EVERY_MS).unref?.())
      standing = await this.standing(peer)
    }
    if (standing === 'member' || standing === 'known') return true
    this.stats.streamsRefused++
    log('refusing a %s stream from %s (%s)', protocol, peer, standing ?? 'not judged in time')
    stream.abort(new PermissionDeniedError(`peer ${peer} may not open ${protocol} on this node`, { peer, protocol }))
    return false
  }

  /**
   * Tells how many RPC calls a peer has in flight (RpcServer.callsInFlight): a stranger's connection
   * that reaches its lifetime during a call is kept until the call ends (or `strangerLifetimeMaxMs`).
   * Without it, the connection is closed at `strangerLifetimeMs` whatever it is doing.
   */
  watchCalls (callsInFlight: (peer: string) => number): void {
    this.#callsInFlight = callsInFlight
  }

  /** RPC streams a stranger has open now. */
  strangerStreams (peer: string): number {
    return this.#streams.get(peer) ?? 0
  }

  /** Closes nothing by itself: forgets the tracked connections and their timers. */
  stop (): void {
    this.#stopped = true
    for (const t of this.#tracked) clearTimeout(t.timer)
    this.#tracked.clear()
    this.#streams.clear()
    this.#markReady()
  }

  /**
   * An RPC stream: anyone may open one (`cluster.join` is how a stranger becomes a member), but a
   * stranger (or a peer not judged yet) only `strangerStreamsMax` at once. Its standing is read
   * without waiting (a stream never waits here for metadata), from this node's applied state.
   */
  async #admitOpenStream (peer: string, stream: Stream): Promise<boolean> {
    const standing = await this.standing(peer)
    if (standing === 'member' || standing === 'known') return true
    const open = this.#streams.get(peer) ?? 0
    if (open >= this.strangerStreamsMax || (open === 0 && this.#streams.size >= STREAM_COUNTS_MAX)) {
      this.stats.strangerStreamsRefused++
      log('refusing an RPC stream from stranger %s: %d of its streams are open', peer, open)
      const refusal = new PermissionDeniedError(`a peer that is not a member or user may have at most ${this.strangerStreamsMax} calls open at once`,
        { peer, limit: this.strangerStreamsMax })
      // answered in the RPC protocol's own terms, so the caller reads a typed error, not a reset
      void refuseRpcStream(stream, refusal)
      return false
    }
    this.#streams.set(peer, open + 1)
    stream.addEventListener('close', () => {
      const n = (this.#streams.get(peer) ?? 1) - 1
      if (n <= 0) this.#streams.delete(peer)
      else this.#streams.set(peer, n)
    }, { once: true })
    return true
  }

  async #standingWhenReady (peer: string): Promise<Standing | undefined> {
    if (this.#source == null) {
      let timer: ReturnType<typeof setTimeout> | undefined
      await Promise.race([this.#ready, new Promise<void>((resolve) => { timer = setTimeout(resolve, this.standingWaitMs) })])
      clearTimeout(timer)
    }
    return await this.standing(peer)
  }

  #track (peer: string, address: string, maConn: MultiaddrConnection): void {
    const entry: Tracked = {
      peer,
      address,
      maConn,
      sinceMs: Date.now(),
      timer: setTimeout(() => { void this.#expire(entry) }, this.strangerLifetimeMs)
    }
    entry.timer.unref?.()
    this.#tracked.add(entry)
    maConn.addEventListener('close', () => { this.#untrack(entry) }, { once: true })
  }

  #untrack (entry: Tracked): void {
    clearTimeout(entry.timer)
    this.#tracked.delete(entry)
  }

  /** Frees the slots of connections that closed or whose peer has become a member or known. */
  async #prune (): Promise<void> {
    for (const entry of [...this.#tracked]) {
      if (entry.maConn.status !== 'open') { this.#untrack(entry); continue }
      const standing = await this.standing(entry.peer)
      if (standing === 'member' || standing === 'known') this.#untrack(entry)
    }
  }

  async #expire (entry: Tracked): Promise<void> {
    if (!this.#tracked.has(entry)) return
    const standing = await this.standing(entry.peer)
    if (standing === 'member' || standing === 'known') {
      this.#untrack(entry)
      return
    }
    // a call in flight (a join committing) keeps the connection, up to the hard limit
    const ageMs = Date.now() - entry.sinceMs
    if ((this.#callsInFlight?.(entry.peer) ?? 0) > 0 && ageMs < this.strangerLifetimeMaxMs && !this.#stopped) {
      entry.timer = setTimeout(() => { void this.#expire(entry) }, Math.min(BUSY_RECHECK_MS, this.strangerLifetimeMaxMs - ageMs))
      entry.timer.unref?.()
      return
    }
    this.#untrack(entry)
    this.stats.connectionsExpired++
    log('closing the connection of stranger %s after %d ms', entry.peer, ageMs)
    entry.maConn.abort(new PermissionDeniedError(`a stranger's connection lasts at most ${this.strangerLifetimeMs} ms (${this.strangerLifetimeMaxMs} ms with a call in flight)`, { peer: entry.peer }))
  }
}

/** Answers the call an RPC stream is about to carry with `error` (without reading it), then closes the stream. */
async function refuseRpcStream (stream: Stream, error: Error): Promise<void> {
  try {
    const signal = AbortSignal.timeout(REFUSAL_WRITE_MS)
    await new FramedStream(stream).write({ kind: FrameKind.Error, error: errorToWire(error) }, { signal })
    await stream.close({ signal })
  } catch {
    stream.abort(error)
  }
}

/** How long a refusal may take to write before the stream is reset instead. */
const REFUSAL_WRITE_MS = 1_000

/**
 * One gater from several: a `deny…` hook denies if any of them denies, and `filterMultiaddrForPeer`
 * (where true means keep) keeps an address only if all of them keep it.
 */
export function composeGaters (...gaters: Array<ConnectionGater | undefined>): ConnectionGater {
  const present = gaters.filter((g): g is ConnectionGater => g != null)
  const keys = new Set(present.flatMap((g) => Object.keys(g) as Array<keyof ConnectionGater>))
  const out: Record<string, (...args: unknown[]) => Promise<boolean>> = {}
  for (const key of keys) {
    const verdict = key === 'filterMultiaddrForPeer' ? false : true
    out[key] = async (...args: unknown[]) => {
      for (const g of present) {
        // eslint-disable-next-line @typescript-eslint/unbound-method -- called below with apply(g)
        const f = g[key] as ((...a: unknown[]) => boolean | Promise<boolean>) | undefined
        if (f != null && (await f.apply(g, args)) === verdict) return verdict
      }
      return !verdict
    }
  }
  return out
}
