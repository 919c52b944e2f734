import { logger } from '@libp2p/logger'

const log = logger('dfs:mount:failover')

/** Most node addresses a pool keeps (the `--node` ones first, then the members learned). */
export const POOL_ADDRS_MAX = 64
/** Most nodes one call tries before it fails (each a fresh session). */
export const POOL_ATTEMPTS_MAX = 4

/**
 * Errors that say the cluster answered: another node would answer the same, so a call that got one
 * is never retried elsewhere. Every other error (unreachable, deadline, no quorum, not leader, a
 * transport failure with no dfs name) says the session's node could not serve: the pool moves on.
 */
const ANSWERS: ReadonlySet<string> = new Set([
  'NotFound', 'AlreadyExists', 'PermissionDenied', 'InvalidArgument', 'InvalidRange', 'IsADirectory',
  'NotADirectory', 'DirectoryNotEmpty', 'QuotaExceeded', 'CorruptExtent', 'FailedPrecondition', 'BadDigest',
  'StorageFull', 'RateLimited', 'UnknownMethod', 'Aborted'
])

/** Whether `err` says the node (or the way to it) failed, rather than the cluster's answer. */
export function isNodeFailure (err: unknown): boolean {
  return !(err instanceof Error && ANSWERS.has(err.name))
}

export interface NodePoolInit<C> {
  /** The addresses to try, in order (at least one). */
  addrs: readonly string[]
  /** Opens a session with the node at `addr`. */
  open: (addr: string) => Promise<C>
  /** Ends a session (errors ignored). */
  close: (session: C) => Promise<void>
}

/**
 * Sessions with the cluster's nodes, one at a time: every call goes through the current one, and when
 * its node fails (isNodeFailure) the pool closes it and opens one with the next address, round
 * robin. A call marked `retry` (reads, and puts, whose spool still holds every byte) is then made
 * again on the next node, up to POOL_ATTEMPTS_MAX nodes in all; any other call in flight fails (the
 * mount answers EIO) and the next call goes to the new node. Concurrent calls that see one failure
 * move the pool once: a failure counts only against the session (generation) it happened on.
 */
export class NodePool<C> {
  readonly #init: NodePoolInit<C>
  readonly #addrs: string[]
  #index = 0
  /** Bumped each time the current session is dropped. */
  #generation = 0
  #session: Promise<C> | undefined
  #closed = false

  constructor (init: NodePoolInit<C>) {
    if (init.addrs.length === 0) throw new Error('a node pool needs at least one address')
    this.#init = init
    this.#addrs = [...new Set(init.addrs)].slice(0, POOL_ADDRS_MAX)
  }

  /** The addresses the pool knows, in the order it tries them. */
  get addrs (): readonly string[] {
    return this.#addrs
  }

  /** The address of the node the current (or next) session is with. */
  get current (): string {
    return this.#addrs[this.#index]
  }

  /** Learns more addresses (e.g. every member's, from `cluster.nodes`), up to POOL_ADDRS_MAX. */
  add (addrs: Iterable<string>): void {
    for (const a of addrs) {
      if (this.#addrs.length >= POOL_ADDRS_MAX) break
      if (!this.#addrs.includes(a)) this.#addrs.push(a)
    }
  }

  /** Runs `fn` with the current session, moving to another node as the class comment says. */
  async run<T> (fn: (session: C) => Promise<T>, options: { retry: boolean }): Promise<T> {
    const attemptsMax = Math.min(POOL_ATTEMPTS_MAX, Math.max(2, this.#addrs.length))
    for (let attempt = 1; ; attempt++) {
      if (this.#closed) throw new Error('the node pool is closed')
      const generation = this.#generation
      let session: C
      try {
        session = await this.#sessionOf(generation)
      } catch (err) {
        // a node that cannot be reached (or proven) is skipped, whatever the call
        this.#fail(generation, err)
        if (attempt >= attemptsMax) throw err
        continue
      }
      try {
        return await fn(session)
      } catch (err) {
        if (!isNodeFailure(err)) throw err
        this.#fail(generation, err)
        if (!options.retry || attempt >= attemptsMax) throw err
      }
    }
  }

  async close (): Promise<void> {
    this.#closed = true
    const s = this.#session
    this.#session = undefined
    if (s !== undefined) await s.then(async (c) => { await this.#init.close(c) }, () => {})
  }

  #sessionOf (generation: number): Promise<C> {
    if (generation !== this.#generation || this.#session === undefined) {
      const addr = this.current
      this.#session = this.#init.open(addr)
      // a failed open is seen by whoever awaits it; this copy must not be an unhandled rejection
      this.#session.catch(() => {})
    }
    return this.#session
  }

  /** Drops the session of `generation` (if it is still the current one) and moves to the next address. */
  #fail (generation: number, err: unknown): void {
    if (generation !== this.#generation) return
    const failed = this.current
    const old = this.#session
    this.#session = undefined
    this.#generation += 1
    this.#index = (this.#index + 1) % this.#addrs.length
    log('node %s failed (%s): moving to %s', failed, (err as Error)?.name ?? String(err), this.current)
    if (old !== undefined) void old.then(async (c) => { await this.#init.close(c) }, () => {}).catch(() => {})
  }
}
