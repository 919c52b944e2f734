/**
 * The node's event log (`dfs cluster events`): the last EVENTS_KEPT events this node observed, in
 * memory, numbered 1, 2, 3 … from the node's start. Readers long-poll it (`cluster.events`): an
 * answer goes out at once when events after the caller's `after` are held, else when one is recorded
 * or the wait ends. Listeners (the metrics) hear every event as it is recorded.
 */
import { logger } from '@libp2p/logger'
import {
  EVENT_TEXT_CHARS_MAX, EVENTS_KEPT, EVENTS_LIMIT_DEFAULT, EVENTS_LIMIT_MAX, EVENTS_WAIT_MS_MAX, EVENTS_WAITERS_MAX,
  UnavailableError
} from '@dfs/api'
import type { ClusterEvent, ClusterEventBody, ClusterEventsResult, MetadataService } from '@dfs/api'

const log = logger('dfs:node:events')

/** How often the leader of every metadata group is looked at for `raft.leader` events. */
export const LEADER_WATCH_MS = 250

export interface EventLogInit {
  /** Events kept (default EVENTS_KEPT). */
  capacity?: number
  /** Most polls waiting at once (default EVENTS_WAITERS_MAX). */
  waitersMax?: number
  /** Wall clock in epoch ms for `at` (default Date.now). */
  now?: () => number
}

export interface EventPollOptions {
  after?: number
  waitMs?: number
  limit?: number
  signal?: AbortSignal
}

export class EventLog {
  readonly capacity: number
  readonly #waitersMax: number
  readonly #now: () => number
  /** The event with seq s is at index (s - 1) % capacity while s is held: held are max(1, #seq - capacity + 1) .. #seq. */
  readonly #ring: Array<ClusterEvent | undefined>
  /** Seq of the newest event recorded (0: none yet). */
  #seq = 0
  /** Polls waiting for the next event: each is called once, by record or by stop. */
  readonly #waiters = new Set<() => void>()
  readonly #listeners = new Set<(event: ClusterEvent) => void>()
  #stopped = false

  constructor (init: EventLogInit = {}) {
    this.capacity = init.capacity ?? EVENTS_KEPT
    this.#waitersMax = init.waitersMax ?? EVENTS_WAITERS_MAX
    this.#now = init.now ?? Date.now
    if (!Number.isSafeInteger(this.capacity) || this.capacity < 1) throw new TypeError(`capacity must be a positive integer, got ${this.capacity}`)
    if (!Number.isSafeInteger(this.#waitersMax) || this.#waitersMax < 0) throw new TypeError(`waitersMax must be an integer ≥ 0, got ${this.#waitersMax}`)
    this.#ring = new Array<ClusterEvent | undefined>(this.capacity)
  }

  /** Seq of the newest event (0 before the first). */
  get newest (): number {
    return this.#seq
  }

  /** Seq of the oldest event held (newest + 1 while none is). */
  get oldest (): number {
    return Math.max(1, this.#seq - this.capacity + 1)
  }

  /** Polls waiting now. */
  get waiting (): number {
    return this.#waiters.size
  }

  /** Records an event now, tells every listener and wakes every waiting poll; returns it as kept. */
  record (body: ClusterEventBody): ClusterEvent {
    const event: ClusterEvent = { ...bounded(body), seq: this.#seq + 1, at: new Date(this.#now()).toISOString() }
    this.#seq = event.seq
    this.#ring[(event.seq - 1) % this.capacity] = event
    for (const listener of this.#listeners) {
      try {
        listener(event)
      } catch (err) {
        // a listener's bug must not lose the event for the others
        log.error('an event listener threw: %s', (err as Error).message)
      }
    }
    this.#wake()
    return event
  }

  /** Calls `listener` with every event recorded from now on, until the returned function is called. */
  subscribe (listener: (event: ClusterEvent) => void): () => void {
    this.#listeners.add(listener)
    return () => { this.#listeners.delete(listener) }
  }

  /**
   * The events held now: with `after`, the oldest `limit` after it (a seq past the newest reads as 0,
   * see ClusterEventsParams); without, the newest `limit`.
   */
  read (options: { after?: number, limit?: number } = {}): ClusterEventsResult {
    const limit = Math.min(Math.max(1, options.limit ?? EVENTS_LIMIT_DEFAULT), EVENTS_LIMIT_MAX)
    const oldest = this.oldest
    let from: number
    let dropped = 0
    if (options.after === undefined) {
      from = Math.max(oldest, this.#seq - limit + 1)
    } else {
      const after = options.after > this.#seq ? 0 : Math.max(0, options.after)
      from = Math.max(oldest, after + 1)
      dropped = from - (after + 1)
    }
    const to = Math.min(this.#seq, from + limit - 1)
    const events: ClusterEvent[] = []
    for (let s = from; s <= to; s++) {
      const e = this.#ring[(s - 1) % this.capacity]
      // a held seq is always in its slot: record writes the slot before it publishes the seq
      if (e?.seq !== s) throw new Error(`event log invariant broken: slot of seq ${s} holds ${e?.seq}`)
      events.push(e)
    }
    const next = events.length > 0
      ? events[events.length - 1].seq
      : options.after === undefined || options.after > this.#seq ? this.#seq : options.after
    return dropped > 0 ? { events, next, dropped } : { events, next }
  }

  /**
   * `read`, but with `after` and nothing newer held it waits up to `waitMs` (at most
   * EVENTS_WAIT_MS_MAX) for an event; `signal` ending the wait answers what is held then (nothing).
   * Unavailable when EVENTS_WAITERS_MAX polls already wait.
   */
  async poll (options: EventPollOptions = {}): Promise<ClusterEventsResult> {
    const first = this.read(options)
    const waitMs = Math.min(Math.max(0, options.waitMs ?? 0), EVENTS_WAIT_MS_MAX)
    if (first.events.length > 0 || options.after === undefined || waitMs === 0 || this.#stopped || options.signal?.aborted === true) return first
    if (this.#waiters.size >= this.#waitersMax) {
      throw new UnavailableError(`${this.#waiters.size} event polls are waiting on this node already; try again later`, { waitersMax: this.#waitersMax })
    }
    await new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer)
        options.signal?.removeEventListener('abort', done)
        this.#waiters.delete(done)
        resolve()
      }
      const timer = setTimeout(done, waitMs)
      options.signal?.addEventListener('abort', done, { once: true })
      this.#waiters.add(done)
    })
    return this.read(options)
  }

  /** Ends every waiting poll (they answer at once from now on); events may still be recorded. */
  stop (): void {
    this.#stopped = true
    this.#wake()
  }

  #wake (): void {
    const waiters = [...this.#waiters]
    this.#waiters.clear()
    for (const w of waiters) w()
  }
}

/** `body` with its free-form text cut to EVENT_TEXT_CHARS_MAX (names and ids are bounded where they come from). */
function bounded (body: ClusterEventBody): ClusterEventBody {
  const out: Record<string, unknown> = { ...body }
  for (const key of ['message', 'reason', 'error'] as const) {
    const v = out[key]
    if (typeof v === 'string' && v.length > EVENT_TEXT_CHARS_MAX) out[key] = v.slice(0, EVENT_TEXT_CHARS_MAX - 1) + '…'
  }
  return out as ClusterEventBody
}

/** What the leader watch reads: every metadata group with its leader and term as this node sees them. */
export type GroupLeaders = () => Array<{ group: number, leader: string | undefined, term: number }>

/**
 * Records a `raft.leader` event whenever a group's leader (or its term, with a leader) changes as
 * `groups` reports it, looking every `everyMs`; the first look records the leaders already known.
 * Returns the function that stops it.
 */
export function watchLeaders (events: EventLog, groups: GroupLeaders, everyMs = LEADER_WATCH_MS): () => void {
  const seen = new Map<number, { leader: string | undefined, term: number }>()
  const look = (): void => {
    let now: ReturnType<GroupLeaders>
    try {
      now = groups()
    } catch (err) {
      // the metadata service is not running (yet, or any more): nothing to look at
      log.trace('leader watch: %s', (err as Error).message)
      return
    }
    for (const g of now) {
      const before = seen.get(g.group)
      const changed = before === undefined
        ? g.leader !== undefined
        : before.leader !== g.leader || (g.leader !== undefined && before.term !== g.term)
      if (changed) events.record({ kind: 'raft.leader', group: g.group, leader: g.leader ?? null, term: g.term })
      seen.set(g.group, { leader: g.leader, term: g.term })
    }
  }
  look()
  const timer = setInterval(look, everyMs)
  timer.unref?.()
  return () => { clearInterval(timer) }
}

/** The leaders of `metadata`'s groups (one group, 0, for a service that does not shard). */
export function groupLeaders (metadata: Pick<MetadataService, 'groups' | 'status'>): GroupLeaders {
  return () => {
    const g = metadata.groups?.()
    if (g !== undefined) return g.groups.map((x) => ({ group: x.group, leader: x.leader, term: x.term }))
    const st = metadata.status()
    return [{ group: 0, leader: st.leader, term: st.term }]
  }
}
