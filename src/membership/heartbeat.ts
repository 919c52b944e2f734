import { TopicValidatorResult, type GossipSub, type Message } from '@libp2p/gossipsub'
import { TypedEventEmitter, type ComponentLogger, type Logger, type PeerId } from '@libp2p/interface'
import { logger } from '@libp2p/logger'
import type { Multiaddr } from '@multiformats/multiaddr'
import { InvalidArgumentError, UnavailableError } from '@dfs/api'
import {
  CLUSTER_ID_PATTERN, HEARTBEAT_ADDR_CHARS_MAX, HEARTBEAT_ADDRS_MAX, HEARTBEAT_MS_MIN, HEARTBEAT_NAME_CHARS_MAX, heartbeatTopic
} from './constants.js'
import {
  FailureDetector, failureDetectorTiming, type MemberHealth, type MembershipCounts, type MemberStatus, type Transition
} from './failure-detector.js'
import { decodeHeartbeat, encodeHeartbeat, type Heartbeat } from './heartbeat-message.js'

/** What a node reports about itself in each heartbeat. */
export interface NodeStats {
  load: { extents: number, bytes: number }
  capacity: { bytes: number }
}

export interface HeartbeatComponents {
  peerId: PeerId
  pubsub: GossipSub
  /** This node's current listen addresses (`host.getMultiaddrs()`). */
  addresses: () => Multiaddr[]
  logger?: ComponentLogger
}

export interface HeartbeatInit {
  /** The cluster whose topic carries the heartbeats. */
  clusterId: string
  /**
   * Whether `peer` (a PeerId string) is a member of the cluster. Heartbeats of anyone else are
   * ignored (not forwarded, not fed to the failure detector), and non-members are forgotten.
   */
  isMember: (peer: string) => boolean
  name?: string
  region?: string
  /** Interval between heartbeats (default 5000). */
  heartbeatMs?: number
  /** Silence after which a member is Suspected (default `heartbeatMs * 2`). */
  suspectTimeoutMs?: number
  /** Silence after which a member is Failed (default 15000). */
  failureTimeoutMs?: number
  /** How often the failure detector is evaluated (default `heartbeatMs / 4`, at most 1000). */
  checkIntervalMs?: number
  /** Load and capacity for the next heartbeat; a failure or one slower than `heartbeatMs` sends the last known. */
  stats?: (options: { signal: AbortSignal }) => NodeStats | Promise<NodeStats>
  /** A monotonic clock in ms for the failure detector (default `performance.now`). */
  clock?: () => number
  /** Stops the service when aborted (like calling `stop()`). */
  signal?: AbortSignal
}

/** A heartbeat the service accepted from a member. */
export interface HeartbeatReceived {
  from: string
  heartbeat: Heartbeat
  /** Receiver's clock reading. */
  atMs: number
}

/** A message on the heartbeat topic that the service refused. */
export interface HeartbeatRefused {
  /** The authenticated publisher (gossipsub `from`), when the message was signed. */
  from: string | undefined
  /** The peer that relayed it to us. */
  via: string
  /**
   * `reject` (invalid: gossipsub drops it, never forwards it, and counts it against the relay's score
   * where topic scoring is configured) or `ignore` (well-formed but unwanted: dropped, not forwarded).
   */
  verdict: 'reject' | 'ignore'
  reason: 'invalid' | 'unsigned' | 'forged' | 'not-member' | 'stale' | 'self'
  detail?: string
}

export interface HeartbeatEvents {
  transition: CustomEvent<Transition>
  heartbeat: CustomEvent<HeartbeatReceived>
  refused: CustomEvent<HeartbeatRefused>
}

/** One member as this node sees it: health from the detector, the rest from its last heartbeat. */
export interface MemberView extends MemberStatus {
  heartbeat: Heartbeat | undefined
}

const ZERO_STATS: NodeStats = { load: { extents: 0, bytes: 0 }, capacity: { bytes: 0 } }

interface Run {
  controller: AbortController
  incarnation: number
  /** Seq of the last heartbeat published in this incarnation. */
  seq: number
  publishTimer?: ReturnType<typeof setTimeout>
  checkTimer: ReturnType<typeof setInterval>
  onAbort?: () => void
}

/**
 * Incarnations only grow within a process, even across restarts of the service in one millisecond.
 * Across process restarts they grow with the wall clock (ms), which moves forward by far more than
 * a restart takes. A node whose clock was set back across a restart is ignored by the members that
 * still remember its last incarnation until its clock passes it (or until they restart): a replay
 * cannot be told from such a restart, and refusing both is the safe side.
 */
let lastIncarnation = 0
function nextIncarnation (): number {
  lastIncarnation = Math.max(Date.now(), lastIncarnation + 1)
  return lastIncarnation
}

/**
 * Heartbeats over gossipsub and the failure detector they feed.
 *
 * Every `heartbeatMs` the node publishes a signed heartbeat (see `Heartbeat`) on
 * `/dfs/heartbeat/1.0.0/<clusterId>`. Received messages are checked in the topic validator, before
 * gossipsub delivers or forwards them:
 *   - not signed, not a valid heartbeat, or `id` ≠ the signed `from` → Reject (dropped, not forwarded)
 *   - from a non-member, from ourselves, or not newer than the last accepted (incarnation, seq) of
 *     that member → Ignore. This holds in every health state, so a replayed heartbeat (every signed
 *     heartbeat is broadcast to all members, so any member may keep old ones) never counts twice
 *     and never revives a Failed member. The pair lives inside the signed payload, so it cannot be
 *     changed without the sender's key.
 *   - else Accept: the member's heartbeat is recorded and the detector hears from it.
 * The detector runs on this node's monotonic clock, never on the sender's `sentAtMs`.
 */
export class HeartbeatService extends TypedEventEmitter<HeartbeatEvents> {
  readonly topic: string
  readonly heartbeatMs: number
  readonly checkIntervalMs: number
  readonly detector: FailureDetector
  readonly #components: HeartbeatComponents
  readonly #init: HeartbeatInit
  readonly #self: string
  readonly #clock: () => number
  readonly #log: Logger
  /** Last accepted heartbeat per member; keys ⊆ detector members. */
  readonly #latest = new Map<string, Heartbeat>()
  /** Present while started; a restart makes a new one (new incarnation, seq from 1). */
  #running: Run | undefined
  #lastStats: NodeStats = ZERO_STATS

  constructor (components: HeartbeatComponents, init: HeartbeatInit) {
    super()
    if (typeof init.clusterId !== 'string' || !CLUSTER_ID_PATTERN.test(init.clusterId)) {
      throw new InvalidArgumentError(`cluster id ${JSON.stringify(init.clusterId)} must match ${String(CLUSTER_ID_PATTERN)}`, { clusterId: init.clusterId })
    }
    if (typeof init.isMember !== 'function') throw new InvalidArgumentError('isMember must be a function')
    for (const [field, value] of [['name', init.name], ['region', init.region]] as const) {
      if (value != null && (value.length > HEARTBEAT_NAME_CHARS_MAX || /[\u0000-\u001f\u007f-\u009f]/.test(value))) { // eslint-disable-line no-control-regex
        throw new InvalidArgumentError(`${field} must be at most ${HEARTBEAT_NAME_CHARS_MAX} printable characters`, { option: field })
      }
    }
    const timing = failureDetectorTiming(init)
    const checkIntervalMs = init.checkIntervalMs ?? Math.min(1000, Math.max(HEARTBEAT_MS_MIN, Math.floor(timing.heartbeatMs / 4)))
    if (!Number.isSafeInteger(checkIntervalMs) || checkIntervalMs < 1 || checkIntervalMs > timing.suspectTimeoutMs) {
      throw new InvalidArgumentError(`checkIntervalMs must be an integer from 1 to the suspect timeout (${timing.suspectTimeoutMs} ms)`, { option: 'checkIntervalMs', value: checkIntervalMs })
    }
    this.#components = components
    this.#init = init
    this.#self = components.peerId.toString()
    this.#clock = init.clock ?? (() => performance.now())
    this.#log = components.logger?.forComponent('dfs:membership') ?? logger('dfs:membership')
    this.topic = heartbeatTopic(init.clusterId)
    this.heartbeatMs = timing.heartbeatMs
    this.checkIntervalMs = checkIntervalMs
    this.detector = new FailureDetector({
      ...timing,
      onTransition: (t) => {
        this.#log('member %s %s → %s (last heard %s)', t.member, t.from, t.to,
          t.lastSeenMs == null ? 'never' : `${Math.round(t.atMs - t.lastSeenMs)} ms ago`)
        this.safeDispatchEvent('transition', { detail: t })
      }
    })
  }

  isStarted (): boolean {
    return this.#running != null
  }

  /** Subscribes to the cluster's topic, publishes a first heartbeat now and then every `heartbeatMs`. */
  start (): void {
    if (this.#running != null) return
    if (this.#init.signal?.aborted === true) throw new UnavailableError('the heartbeat service was aborted before it started')
    const { pubsub } = this.#components
    if (pubsub.topicValidators.has(this.topic)) {
      throw new UnavailableError(`another service validates ${this.topic} already`, { topic: this.topic })
    }
    pubsub.topicValidators.set(this.topic, this.#validate)
    try {
      pubsub.subscribe(this.topic)
    } catch (err) {
      pubsub.topicValidators.delete(this.topic)
      throw new UnavailableError(`cannot subscribe to ${this.topic}: ${String((err as Error).message)}`, { topic: this.topic })
    }
    const checkTimer = setInterval(() => { this.check() }, this.checkIntervalMs)
    checkTimer.unref?.()
    this.#running = { controller: new AbortController(), incarnation: nextIncarnation(), seq: 0, checkTimer }
    const signal = this.#init.signal
    if (signal != null) {
      const onAbort = (): void => { this.stop() }
      signal.addEventListener('abort', onAbort, { once: true })
      this.#running.onAbort = onAbort
    }
    this.#log('heartbeats on %s every %d ms (suspect after %d ms, failed after %d ms)', this.topic, this.heartbeatMs,
      this.detector.suspectTimeoutMs, this.detector.failureTimeoutMs)
    this.#schedule(0)
  }

  /** Stops publishing and receiving. The detector keeps its last view (it is not cleared). */
  stop (): void {
    const running = this.#running
    if (running == null) return
    this.#running = undefined
    running.controller.abort()
    clearInterval(running.checkTimer)
    if (running.publishTimer != null) clearTimeout(running.publishTimer)
    if (running.onAbort != null) this.#init.signal?.removeEventListener('abort', running.onAbort)
    const { pubsub } = this.#components
    if (pubsub.topicValidators.get(this.topic) === this.#validate) pubsub.topicValidators.delete(this.topic)
    try {
      pubsub.unsubscribe(this.topic)
    } catch (err) {
      // gossipsub refuses to unsubscribe once it is stopped itself (host stopped first)
      this.#log.trace('unsubscribe from %s failed - %e', this.topic, err)
    }
    this.#log('heartbeats stopped')
  }

  /**
   * Starts watching a member that has not sent a heartbeat yet (e.g. from the Raft member list), so
   * that it turns Suspected then Failed if it never does. Members also enter on their first heartbeat.
   */
  watch (member: string): void {
    if (member === this.#self || !this.#init.isMember(member)) return
    this.detector.add(member, this.#clock())
  }

  /** Evaluates the failure detector now; the service also does so every `checkIntervalMs`. Forgets non-members. */
  check (): Transition[] {
    for (const { member } of this.detector.members()) {
      if (!this.#init.isMember(member)) {
        this.detector.remove(member)
        this.#latest.delete(member)
        this.#log('forgot %s: no longer a member', member)
      }
    }
    return this.detector.tick(this.#clock())
  }

  health (member: string): MemberHealth | undefined {
    return this.detector.health(member)
  }

  counts (): MembershipCounts {
    return this.detector.counts()
  }

  /** Every member this node watches (itself excluded), with its last heartbeat. */
  members (): MemberView[] {
    return this.detector.members().map((s) => ({ ...s, heartbeat: this.#latest.get(s.member) }))
  }

  #schedule (delayMs: number): void {
    const running = this.#running
    if (running == null) return
    running.publishTimer = setTimeout(() => {
      const startedMs = this.#clock()
      void this.#publish().finally(() => {
        // a stop() (and maybe a new start()) meanwhile ended this chain
        if (this.#running !== running) return
        // fixed rate: the next heartbeat is due heartbeatMs after this one started
        this.#schedule(Math.max(0, this.heartbeatMs - (this.#clock() - startedMs)))
      })
    }, delayMs)
    running.publishTimer.unref?.()
  }

  async #publish (): Promise<void> {
    const running = this.#running
    if (running == null) return
    try {
      const stats = await this.#stats(running.controller.signal)
      if (this.#running !== running) return
      const heartbeat: Heartbeat = {
        id: this.#self,
        incarnation: running.incarnation,
        seq: ++running.seq,
        name: this.#init.name ?? '',
        region: this.#init.region ?? '',
        addrs: this.#components.addresses().map((a) => a.toString())
          .filter((a) => a.length <= HEARTBEAT_ADDR_CHARS_MAX).slice(0, HEARTBEAT_ADDRS_MAX),
        load: stats.load,
        capacity: stats.capacity,
        sentAtMs: Date.now()
      }
      const { recipients } = await this.#components.pubsub.publish(this.topic, encodeHeartbeat(heartbeat))
      this.#log.trace('heartbeat %d sent to %d peers', heartbeat.seq, recipients.length)
    } catch (err) {
      if (this.#running === running) this.#log.error('publishing a heartbeat failed - %e', err)
    }
  }

  /** Load and capacity, with a deadline of one heartbeat interval; on failure the last known values. */
  async #stats (signal: AbortSignal): Promise<NodeStats> {
    const source = this.#init.stats
    if (source == null) return this.#lastStats
    const deadline = AbortSignal.any([signal, AbortSignal.timeout(this.heartbeatMs)])
    try {
      const stats = await Promise.race([
        Promise.resolve(source({ signal: deadline })),
        new Promise<never>((_resolve, reject) => {
          if (deadline.aborted) reject(deadline.reason as Error)
          deadline.addEventListener('abort', () => { reject(deadline.reason as Error) }, { once: true })
        })
      ])
      const next = {
        load: { extents: stats?.load?.extents, bytes: stats?.load?.bytes },
        capacity: { bytes: stats?.capacity?.bytes }
      }
      // a bad reading must not stop the heartbeats (the node would look dead): keep the last good one
      if (![next.load.extents, next.load.bytes, next.capacity.bytes].every((n) => Number.isSafeInteger(n) && n >= 0)) {
        throw new InvalidArgumentError(`load and capacity must be unsigned integers, got ${JSON.stringify(next)}`)
      }
      this.#lastStats = next
    } catch (err) {
      if (!signal.aborted) this.#log.error('reading load and capacity failed, sending the last known - %e', err)
    }
    return this.#lastStats
  }

  readonly #validate = (propagationSource: PeerId, msg: Message): TopicValidatorResult => {
    const via = propagationSource.toString()
    if (msg.type !== 'signed') return this.#refuse({ from: undefined, via, verdict: 'reject', reason: 'unsigned' })
    const from = msg.from.toString()
    if (from === this.#self) return this.#refuse({ from, via, verdict: 'ignore', reason: 'self' })
    let heartbeat: Heartbeat
    try {
      heartbeat = decodeHeartbeat(msg.data)
    } catch (err) {
      return this.#refuse({ from, via, verdict: 'reject', reason: 'invalid', detail: String((err as Error).message) })
    }
    if (heartbeat.id !== from) {
      return this.#refuse({ from, via, verdict: 'reject', reason: 'forged', detail: `claims to be ${heartbeat.id}` })
    }
    if (!this.#init.isMember(from)) return this.#refuse({ from, via, verdict: 'ignore', reason: 'not-member' })
    const last = this.#latest.get(from)
    // (incarnation, seq) must grow, whatever the member's health: a Failed member is exactly the one
    // an old signed heartbeat, replayed, would make look alive (see `Heartbeat` on restarts)
    if (last != null && (heartbeat.incarnation < last.incarnation || (heartbeat.incarnation === last.incarnation && heartbeat.seq <= last.seq))) {
      return this.#refuse({ from, via, verdict: 'ignore', reason: 'stale', detail: `${heartbeat.incarnation}/${heartbeat.seq} after ${last.incarnation}/${last.seq}` })
    }
    const atMs = this.#clock()
    this.#latest.set(from, heartbeat)
    this.detector.heartbeat(from, atMs)
    this.safeDispatchEvent('heartbeat', { detail: { from, heartbeat, atMs } })
    return TopicValidatorResult.Accept
  }

  #refuse (refused: HeartbeatRefused): TopicValidatorResult {
    // eslint-disable-next-line @typescript-eslint/unbound-method -- a Logger's trace is a debug instance, not a method
    const log = refused.verdict === 'reject' ? this.#log : this.#log.trace
    log('%s heartbeat from %s via %s: %s%s', refused.verdict, refused.from ?? '(unsigned)', refused.via, refused.reason,
      refused.detail == null ? '' : ` (${refused.detail})`)
    this.safeDispatchEvent('refused', { detail: refused })
    return refused.verdict === 'reject' ? TopicValidatorResult.Reject : TopicValidatorResult.Ignore
  }
}

/** The components of a heartbeat service from a node host (`createHost({ role: 'node' })`). */
export function heartbeatComponents (host: { peerId: PeerId, services: { pubsub: GossipSub }, getMultiaddrs: () => Multiaddr[], logger?: ComponentLogger }): HeartbeatComponents {
  return { peerId: host.peerId, pubsub: host.services.pubsub, addresses: () => host.getMultiaddrs(), logger: host.logger }
}

/** Factory in the style of libp2p services: `heartbeats(init)(components)`. */
export function heartbeats (init: HeartbeatInit): (components: HeartbeatComponents) => HeartbeatService {
  return (components) => new HeartbeatService(components, init)
}
