import { logger } from '@libp2p/logger'
import { AUDIT_BATCH_MAX, AUDIT_FIELD_LENGTH_MAX, AbortedError } from '@dfs/api'
import type { AuditRecord, MetadataService, MetadataView, Role, RpcCallInfo, RpcCallOutcome, RpcInterceptor } from '@dfs/api'

const log = logger('dfs:node:audit')

/** How long records wait before they are proposed (unless a batch fills sooner). */
export const AUDIT_FLUSH_INTERVAL_MS = 200
/** Most records waiting to be written; past it, records are coalesced into counters. */
export const AUDIT_QUEUE_MAX = 4096
/** Most counters of records past the queue bound; past it, records are only counted as dropped. */
export const AUDIT_COUNTERS_MAX = 1024
/** Backoff of a proposal that failed for want of a quorum: doubles from the first to the last. */
export const AUDIT_RETRY_DELAY_MS_MIN = 200
export const AUDIT_RETRY_DELAY_MS_MAX = 5000
/** Deadline of one AppendAudit proposal. */
export const AUDIT_PROPOSE_TIMEOUT_MS = 5000
/** How long stop() keeps trying to write what is queued. */
export const AUDIT_STOP_TIMEOUT_MS = 2000

/** The operation of the record that counts records the recorder had to drop (its `count`). */
export const AUDIT_DROPPED_OPERATION = 'audit.dropped'

/** Refusals recorded whatever the call's action, and coalesced per (user, operation, error) in a window. */
export const AUDITED_REFUSALS: ReadonlySet<string> = new Set(['PermissionDenied', 'InvalidToken', 'TokenExpired', 'QuotaExceeded', 'RateLimited'])

/**
 * Actions whose calls are not recorded unless refused: reads, and node-to-node traffic (extents,
 * peer queries), which members make all the time on behalf of calls that are recorded.
 */
const UNRECORDED_ACTIONS: ReadonlySet<string> = new Set(['fs.read', 'cluster.read', 'audit.read', 'extent.read', 'extent.write', 'node.peer'])

/**
 * Methods under an open or mutating action that change nothing (`cluster.identify`: a node proves
 * which cluster it belongs to): recorded only when refused.
 */
const READ_ONLY_METHODS: ReadonlySet<string> = new Set(['cluster.identify'])

/** Proposal failures after which the same batch may succeed later; any other failure drops the batch. */
const RETRYABLE = new Set(['NoQuorum', 'NotLeader', 'Unavailable', 'DeadlineExceeded', 'Aborted', 'NodeUnreachable', 'WrongShard'])

/** Whether a call ends up in the audit log: every mutating call, and every refusal of any call. */
export function isAudited (call: RpcCallInfo, outcome: RpcCallOutcome): boolean {
  if (!outcome.ok && outcome.error != null && AUDITED_REFUSALS.has(outcome.error.name)) return true
  if (call.method.startsWith('test.') || READ_ONLY_METHODS.has(call.method)) return false
  return !UNRECORDED_ACTIONS.has(call.action)
}

/** A string field cut to AUDIT_FIELD_LENGTH_MAX (with a trailing `…`). */
export function auditField (s: string): string {
  return s.length <= AUDIT_FIELD_LENGTH_MAX ? s : s.slice(0, AUDIT_FIELD_LENGTH_MAX - 1) + '…'
}

/**
 * What a call's validated params name: a path (as the caller named it, in its namespace), both paths
 * of a move, a setting and its value, a policy, a PeerId, a token id, a node or a name — prefixed
 * with `TENANT:` when the call names a tenant. '' when the params name nothing or were never
 * validated. Secrets (a join token) are never copied.
 */
export function auditResource (params: unknown): string {
  if (params == null || typeof params !== 'object' || Array.isArray(params)) return ''
  const p = params as Record<string, unknown>
  const str = (k: string): string | undefined => typeof p[k] === 'string' ? p[k] : undefined
  const scalar = (k: string): string | undefined => {
    const v = p[k]
    return typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean' ? String(v) : undefined
  }
  let resource = ''
  const src = str('src') ?? str('from')
  const dst = str('dst') ?? str('to')
  if (str('path') !== undefined) resource = str('path') ?? ''
  else if (src !== undefined && dst !== undefined) resource = `${src} -> ${dst}`
  else if (str('key') !== undefined) resource = scalar('value') !== undefined ? `${str('key')}=${scalar('value')}` : str('key') ?? ''
  else if (str('kind') !== undefined && str('name') !== undefined) resource = `${str('kind')} ${str('name')}`
  else {
    for (const k of ['peer', 'user', 'id', 'node', 'name', 'for', 'accessKeyId']) {
      const v = str(k)
      if (v !== undefined) { resource = v; break }
    }
  }
  const tenant = str('tenant')
  if (tenant !== undefined && tenant !== '') resource = `${tenant}:${resource}`
  return auditField(resource)
}

export interface AuditRecorderInit {
  /** This node's PeerId: the `node` of every record, and a caller that acts as `node`. */
  nodeId: string
  /** Where records go (AppendAudit) and where callers' roles are looked up (this node's applied state). */
  metadata: Pick<MetadataService, 'propose' | 'staleRead'>
  flushIntervalMs?: number
  queueMax?: number
  countersMax?: number
  retryDelayMsMin?: number
  retryDelayMsMax?: number
  proposeTimeoutMs?: number
  stopTimeoutMs?: number
}

/**
 * The audit log's recorder: an RPC interceptor placed ahead of authorization, so it sees every call,
 * refused ones included. Its `after` only queues (synchronous, no I/O); a background loop proposes
 * the queue as AppendAudit batches of at most AUDIT_BATCH_MAX records every flush interval, or
 * sooner when a batch fills. Auditing never delays or fails a call: a node that crashes loses what
 * it had not written yet (at most about one flush interval, more while it has no quorum).
 *
 * Invariants:
 * - Records reach the log in the order their calls ended (one proposal in flight, the queue's head
 *   first; a failed proposal is retried before anything behind it).
 * - Within a window (the records queued since the last seal), refusals with the same (user,
 *   operation, error) are one record whose `count` says how many (the first one's resource), so a
 *   flood of refusals from one peer costs one record per window. A stranger's failures (e.g. joins
 *   with malformed tokens) are coalesced the same way; a user's other failures are each recorded.
 * - At most `queueMax` records wait; past it a record becomes a counter per (user, operation,
 *   error) (at most `countersMax` of them), and past that it is only counted; the counters and the
 *   dropped count are written as records once there is room. Memory stays bounded whatever the
 *   callers do and however long metadata has no quorum.
 * - A proposal that fails for want of a quorum is retried with backoff; one the log refuses outright
 *   is dropped and counted. A retried proposal that had in fact committed is written twice (the log
 *   is at-least-once, not exactly-once).
 */
export class AuditRecorder implements RpcInterceptor {
  readonly name = 'audit'
  readonly #nodeId: string
  readonly #metadata: AuditRecorderInit['metadata']
  readonly #flushIntervalMs: number
  readonly #queueMax: number
  readonly #countersMax: number
  readonly #retryMin: number
  readonly #retryMax: number
  readonly #proposeTimeoutMs: number
  readonly #stopTimeoutMs: number

  /** The current window's records, in the order their calls ended. */
  #window: AuditRecord[] = []
  /** The refusals of the current window by (user, operation, error): each is also in #window. */
  readonly #coalesced = new Map<string, AuditRecord>()
  /** Sealed windows waiting to be proposed, oldest first; the head is what is (or will be) in flight. */
  readonly #outbox: AuditRecord[] = []
  /** Records past the queue bound, by (user, operation, error). */
  readonly #counters = new Map<string, AuditRecord>()
  /** Records neither queued nor counted (and batches the log refused). */
  #dropped = 0

  #loop: Promise<void> | undefined
  #stopping: Promise<void> | undefined
  /** Fires when stop()'s flush deadline passes: the loop then ends, whatever is left unwritten. */
  readonly #deadline = new AbortController()
  #wake: (() => void) | undefined
  /** The loop waits out a backoff: a full window does not cut it short. */
  #backingOff = false

  constructor (init: AuditRecorderInit) {
    this.#nodeId = init.nodeId
    this.#metadata = init.metadata
    this.#flushIntervalMs = init.flushIntervalMs ?? AUDIT_FLUSH_INTERVAL_MS
    this.#queueMax = init.queueMax ?? AUDIT_QUEUE_MAX
    this.#countersMax = init.countersMax ?? AUDIT_COUNTERS_MAX
    this.#retryMin = init.retryDelayMsMin ?? AUDIT_RETRY_DELAY_MS_MIN
    this.#retryMax = init.retryDelayMsMax ?? AUDIT_RETRY_DELAY_MS_MAX
    this.#proposeTimeoutMs = init.proposeTimeoutMs ?? AUDIT_PROPOSE_TIMEOUT_MS
    this.#stopTimeoutMs = init.stopTimeoutMs ?? AUDIT_STOP_TIMEOUT_MS
  }

  /** Records waiting to be written (queued and coalesced into counters; not the dropped). */
  get pending (): number {
    let n = this.#window.length + this.#outbox.length
    for (const c of this.#counters.values()) n += c.count
    return n
  }

  start (): void {
    if (this.#loop !== undefined) return
    this.#loop = this.#run()
  }

  /** Stops the loop after writing what it can within the stop deadline. Safe to call more than once. */
  async stop (): Promise<void> {
    if (this.#loop === undefined) return
    this.#stopping ??= (async () => {
      const timer = setTimeout(() => { this.#deadline.abort(new AbortedError('the audit flush deadline passed')) }, this.#stopTimeoutMs)
      this.#wake?.()
      await this.#loop
      clearTimeout(timer)
      const lost = this.pending + this.#dropped
      if (lost > 0) log.error('stopping with %d audit records unwritten', lost)
    })()
    await this.#stopping
  }

  after (call: RpcCallInfo, outcome: RpcCallOutcome): void {
    if (!isAudited(call, outcome)) return
    const error = outcome.ok ? null : outcome.error?.name ?? 'Aborted'
    const key = `${call.peer}\u0000${call.method}\u0000${error ?? ''}`
    // only coalescible records are in #coalesced: a hit needs no lookup (a flood costs O(1) a call)
    const same = this.#coalesced.get(key)
    if (same !== undefined) { same.count++; return }
    if (this.#window.length + this.#outbox.length >= this.#queueMax) {
      const counter = this.#counters.get(key)
      if (counter !== undefined) counter.count++
      else if (this.#counters.size < this.#countersMax) this.#counters.set(key, this.#record(call, outcome, error))
      else this.#dropped++
      return
    }
    const record = this.#record(call, outcome, error)
    this.#window.push(record)
    // refusals, and any failure of a caller with no standing (a stranger trying open methods with bad input)
    if (error != null && (AUDITED_REFUSALS.has(error) || record.role === null)) this.#coalesced.set(key, record)
    if (this.#window.length >= AUDIT_BATCH_MAX && !this.#backingOff) this.#wake?.()
  }

  #record (call: RpcCallInfo, outcome: RpcCallOutcome, error: string | null): AuditRecord {
    const { role, tenant } = this.#standing(call.peer)
    return {
      timeMs: call.startedAtMs + outcome.durationMs,
      user: call.peer,
      role,
      tenant,
      operation: auditField(call.method),
      resource: auditResource(call.params),
      success: outcome.ok,
      error,
      count: 1,
      node: this.#nodeId
    }
  }

  /** The caller's role and tenant in this node's applied state: a grant first, then membership. */
  #standing (peer: string): { role: Role | 'node' | null, tenant: string | null } {
    if (peer === this.#nodeId) return { role: 'node', tenant: null }
    const none = { role: null, tenant: null }
    try {
      return this.#metadata.staleRead?.((view: MetadataView) => {
        const user = view.user(peer)
        if (user !== undefined) return { role: user.role, tenant: user.tenant }
        return view.members().some((m) => m.id === peer) ? { role: 'node' as const, tenant: null } : none
      }) ?? none
    } catch (err) {
      log('looking up the standing of %s: %s', peer, (err as Error).message)
      return none
    }
  }

  /** Ends the window: its records join the outbox, then the counters and the dropped count when there is room. */
  #seal (): void {
    for (const r of this.#window) this.#outbox.push(r)
    this.#window = []
    this.#coalesced.clear()
    for (const [key, counter] of this.#counters) {
      if (this.#outbox.length >= this.#queueMax) return
      this.#outbox.push(counter)
      this.#counters.delete(key)
    }
    if (this.#dropped > 0 && this.#outbox.length < this.#queueMax) {
      this.#outbox.push({
        timeMs: Date.now(),
        user: this.#nodeId,
        role: 'node',
        tenant: null,
        operation: AUDIT_DROPPED_OPERATION,
        resource: '',
        success: false,
        error: null,
        count: this.#dropped,
        node: this.#nodeId
      })
      this.#dropped = 0
    }
  }

  async #run (): Promise<void> {
    let waitMs = this.#flushIntervalMs
    let retryMs = this.#retryMin
    while (true) {
      if (this.#stopping === undefined) await this.#pause(waitMs)
      this.#backingOff = false
      this.#seal()
      if (this.#outbox.length === 0) {
        if (this.#stopping !== undefined) return
        waitMs = this.#flushIntervalMs
        continue
      }
      if (this.#deadline.signal.aborted) return
      if (await this.#proposeHead()) {
        retryMs = this.#retryMin
        waitMs = this.#outbox.length > 0 ? 0 : this.#flushIntervalMs
      } else {
        this.#backingOff = true
        waitMs = retryMs
        retryMs = Math.min(retryMs * 2, this.#retryMax)
        if (this.#stopping !== undefined) await this.#pause(waitMs)
      }
    }
  }

  /** Proposes the outbox's first batch; true when it was written or dropped (the next may go). */
  async #proposeHead (): Promise<boolean> {
    const batch = this.#outbox.slice(0, AUDIT_BATCH_MAX)
    try {
      await this.#metadata.propose({ type: 'AppendAudit', records: batch },
        { signal: AbortSignal.any([this.#deadline.signal, AbortSignal.timeout(this.#proposeTimeoutMs)]) })
      this.#outbox.splice(0, batch.length)
      return true
    } catch (err) {
      const name = (err as Error)?.name ?? ''
      if (RETRYABLE.has(name) || this.#deadline.signal.aborted) {
        log('writing %d audit records failed, will retry: %s: %s', batch.length, name, (err as Error)?.message)
        return false
      }
      log.error('the audit log refused %d records, dropped: %s: %s', batch.length, name, (err as Error)?.message)
      this.#outbox.splice(0, batch.length)
      this.#dropped += batch.reduce((n, r) => n + r.count, 0)
      return true
    }
  }

  /** Waits `ms`, or less when woken (a full window, stop) or the stop deadline passes. */
  async #pause (ms: number): Promise<void> {
    if (this.#deadline.signal.aborted) return
    await new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer)
        this.#wake = undefined
        this.#deadline.signal.removeEventListener('abort', done)
        resolve()
      }
      const timer = setTimeout(done, ms)
      this.#wake = done
      this.#deadline.signal.addEventListener('abort', done, { once: true })
    })
  }
}
