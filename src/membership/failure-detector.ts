import { InvalidArgumentError } from '@dfs/api'
import { FAILURE_TIMEOUT_MS_DEFAULT, HEARTBEAT_MS_DEFAULT, HEARTBEAT_MS_MIN, SUSPECT_HEARTBEATS, TIMEOUT_MS_MAX } from './constants.js'

/**
 * Health of a member as this node sees it.
 *
 *   Healthy ──(silent ≥ suspectTimeoutMs)──▶ Suspected ──(silent ≥ failureTimeoutMs)──▶ Failed
 *      ▲                                        │                                        │
 *      └──────────────── heartbeat ─────────────┴──────────────── heartbeat ─────────────┘
 *
 * "Silent" counts from the last heartbeat, or from when the member was added if none came yet.
 */
export type MemberHealth = 'Healthy' | 'Suspected' | 'Failed'

export interface Transition {
  member: string
  from: MemberHealth
  to: MemberHealth
  /** Clock reading of the member's last heartbeat; undefined if none arrived since it was added. */
  lastSeenMs: number | undefined
  /** Clock reading at which the transition was observed. */
  atMs: number
}

export interface MemberStatus {
  member: string
  health: MemberHealth
  lastSeenMs: number | undefined
  /** Clock reading at which the member entered its current state. */
  sinceMs: number
}

export interface MembershipCounts {
  total: number
  healthy: number
  suspected: number
  failed: number
}

export interface FailureDetectorInit {
  /** Interval at which members send heartbeats (default 5000). */
  heartbeatMs?: number
  /** Silence after which a member is Suspected (default `heartbeatMs * 2`, at most `failureTimeoutMs`). */
  suspectTimeoutMs?: number
  /** Silence after which a member is Failed (default 15000; must exceed `heartbeatMs`). */
  failureTimeoutMs?: number
  /** Called once per transition, in order, after the detector's state reflects it. */
  onTransition?: (transition: Transition) => void
}

/** Validated timing of a failure detector. Invariant: heartbeatMs < suspectTimeoutMs ≤ failureTimeoutMs. */
export interface FailureDetectorTiming {
  heartbeatMs: number
  suspectTimeoutMs: number
  failureTimeoutMs: number
}

function checkMs (name: string, value: number, min: number): void {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > TIMEOUT_MS_MAX) {
    throw new InvalidArgumentError(`${name} must be an integer number of milliseconds from ${min} to ${TIMEOUT_MS_MAX}, got ${String(value)}`,
      { option: name, value, min, max: TIMEOUT_MS_MAX })
  }
}

/** Fills defaults and checks the timing; throws InvalidArgument naming the option at fault. */
export function failureDetectorTiming (init: Omit<FailureDetectorInit, 'onTransition'> = {}): FailureDetectorTiming {
  const heartbeatMs = init.heartbeatMs ?? HEARTBEAT_MS_DEFAULT
  checkMs('heartbeatMs', heartbeatMs, HEARTBEAT_MS_MIN)
  const failureTimeoutMs = init.failureTimeoutMs ?? FAILURE_TIMEOUT_MS_DEFAULT
  checkMs('failureTimeoutMs', failureTimeoutMs, 1)
  if (failureTimeoutMs <= heartbeatMs) {
    throw new InvalidArgumentError(`the failure timeout (${failureTimeoutMs} ms) must be longer than the heartbeat interval (${heartbeatMs} ms)`,
      { option: 'failureTimeoutMs', failureTimeoutMs, heartbeatMs })
  }
  const suspectTimeoutMs = init.suspectTimeoutMs ?? Math.min(heartbeatMs * SUSPECT_HEARTBEATS, failureTimeoutMs)
  checkMs('suspectTimeoutMs', suspectTimeoutMs, 1)
  if (suspectTimeoutMs <= heartbeatMs || suspectTimeoutMs > failureTimeoutMs) {
    throw new InvalidArgumentError(`the suspect timeout (${suspectTimeoutMs} ms) must be longer than the heartbeat interval (${heartbeatMs} ms) and at most the failure timeout (${failureTimeoutMs} ms)`,
      { option: 'suspectTimeoutMs', suspectTimeoutMs, heartbeatMs, failureTimeoutMs })
  }
  return { heartbeatMs, suspectTimeoutMs, failureTimeoutMs }
}

interface Entry {
  health: MemberHealth
  /** Last heartbeat, or undefined if none since `addedMs`. */
  lastSeenMs: number | undefined
  addedMs: number
  sinceMs: number
}

const ORDER: readonly MemberHealth[] = ['Healthy', 'Suspected', 'Failed']

/**
 * A timeout failure detector. Pure: it never reads a clock or sets a timer; every call that depends
 * on time takes `nowMs` from the caller (a monotonic clock in production, a fake one in tests), and
 * the caller drives it with `tick(nowMs)`. Readings going backwards are treated as no time passing.
 */
export class FailureDetector {
  readonly heartbeatMs: number
  readonly suspectTimeoutMs: number
  readonly failureTimeoutMs: number
  readonly #members = new Map<string, Entry>()
  readonly #onTransition: ((transition: Transition) => void) | undefined

  constructor (init: FailureDetectorInit = {}) {
    const timing = failureDetectorTiming(init)
    this.heartbeatMs = timing.heartbeatMs
    this.suspectTimeoutMs = timing.suspectTimeoutMs
    this.failureTimeoutMs = timing.failureTimeoutMs
    this.#onTransition = init.onTransition
  }

  /**
   * Starts watching `member` as Healthy, with a grace period: it turns Suspected only if no heartbeat
   * arrives within the suspect timeout from now. Returns false (and changes nothing) if it is watched already.
   */
  add (member: string, nowMs: number): boolean {
    checkNow(nowMs)
    if (this.#members.has(member)) return false
    this.#members.set(member, { health: 'Healthy', lastSeenMs: undefined, addedMs: nowMs, sinceMs: nowMs })
    return true
  }

  /** Stops watching `member` (it left the cluster). No transition is emitted. */
  remove (member: string): boolean {
    return this.#members.delete(member)
  }

  has (member: string): boolean {
    return this.#members.has(member)
  }

  /**
   * Records a heartbeat of `member` (adding it if unknown). A Suspected or Failed member becomes
   * Healthy; the transition is returned (and passed to `onTransition`).
   */
  heartbeat (member: string, nowMs: number): Transition[] {
    checkNow(nowMs)
    const entry = this.#members.get(member)
    if (entry == null) {
      this.#members.set(member, { health: 'Healthy', lastSeenMs: nowMs, addedMs: nowMs, sinceMs: nowMs })
      return []
    }
    entry.lastSeenMs = Math.max(entry.lastSeenMs ?? nowMs, nowMs)
    if (entry.health === 'Healthy') return []
    const transition: Transition = { member, from: entry.health, to: 'Healthy', lastSeenMs: entry.lastSeenMs, atMs: nowMs }
    entry.health = 'Healthy'
    entry.sinceMs = nowMs
    this.#emit([transition])
    return [transition]
  }

  /**
   * Moves every member whose silence has passed a timeout. A member silent past the failure timeout
   * while still Healthy (e.g. the caller's timer was late) goes through Suspected first: two
   * transitions, in order, so observers always see the edges of the state diagram.
   */
  tick (nowMs: number): Transition[] {
    checkNow(nowMs)
    const out: Transition[] = []
    for (const [member, entry] of this.#members) {
      const silentMs = nowMs - (entry.lastSeenMs ?? entry.addedMs)
      const target: MemberHealth = silentMs >= this.failureTimeoutMs
        ? 'Failed'
        : silentMs >= this.suspectTimeoutMs ? 'Suspected' : 'Healthy'
      // tick only moves forward: recovery happens through heartbeat()
      while (ORDER.indexOf(entry.health) < ORDER.indexOf(target)) {
        const to = ORDER[ORDER.indexOf(entry.health) + 1]
        out.push({ member, from: entry.health, to, lastSeenMs: entry.lastSeenMs, atMs: nowMs })
        entry.health = to
        entry.sinceMs = nowMs
      }
    }
    this.#emit(out)
    return out
  }

  health (member: string): MemberHealth | undefined {
    return this.#members.get(member)?.health
  }

  status (member: string): MemberStatus | undefined {
    const entry = this.#members.get(member)
    return entry == null ? undefined : { member, health: entry.health, lastSeenMs: entry.lastSeenMs, sinceMs: entry.sinceMs }
  }

  /** Every watched member, in the order they were added. */
  members (): MemberStatus[] {
    return [...this.#members].map(([member, e]) => ({ member, health: e.health, lastSeenMs: e.lastSeenMs, sinceMs: e.sinceMs }))
  }

  counts (): MembershipCounts {
    const counts: MembershipCounts = { total: 0, healthy: 0, suspected: 0, failed: 0 }
    for (const entry of this.#members.values()) {
      counts.total++
      if (entry.health === 'Healthy') counts.healthy++
      else if (entry.health === 'Suspected') counts.suspected++
      else counts.failed++
    }
    return counts
  }

  #emit (transitions: Transition[]): void {
    if (this.#onTransition == null) return
    for (const t of transitions) this.#onTransition(t)
  }
}

function checkNow (nowMs: number): void {
  // a clock reading is produced by our own code: a bad one is a bug, not input
  if (typeof nowMs !== 'number' || !Number.isFinite(nowMs)) throw new TypeError(`clock reading must be a finite number, got ${String(nowMs)}`)
}
