import { RateLimitedError, type MetadataService, type RpcCallInfo, type RpcInterceptor } from '@dfs/api'
import { NODE_ACTIONS, type Caller } from './index.js'

/** Most callers whose buckets one node keeps; past it the least recently used bucket is dropped. */
export const RATE_BUCKETS_MAX = 10_000

/**
 * Token buckets, one per key, each refilled at its own rate (tokens per second) up to a burst of
 * max(rate, 1). Pure but for the clock, which the caller passes in, so tests drive time.
 *
 * Bounded: at most `bucketsMax` buckets. A bucket that has refilled to its burst carries no state
 * worth keeping (a new one would be the same), so idle buckets are dropped first; past the bound the
 * least recently used one goes, which at worst grants that caller a fresh burst.
 */
export class TokenBuckets {
  readonly #bucketsMax: number
  /** In least-recently-used order (a touched bucket is moved to the end). */
  readonly #buckets = new Map<string, { tokens: number, atMs: number, rate: number }>()

  constructor (bucketsMax = RATE_BUCKETS_MAX) {
    if (!(Number.isInteger(bucketsMax) && bucketsMax > 0)) throw new Error(`bucketsMax ${bucketsMax} must be a positive integer`)
    this.#bucketsMax = bucketsMax
  }

  get size (): number {
    return this.#buckets.size
  }

  /**
   * Takes a token from `key`'s bucket at `nowMs` for a caller allowed `rate` requests per second
   * (0: unlimited, nothing is kept). Returns 0 when taken, else the milliseconds until one is there.
   */
  take (key: string, rate: number, nowMs: number): number {
    if (!(rate > 0) || !Number.isFinite(rate)) {
      this.#buckets.delete(key)
      return 0
    }
    const burst = Math.max(rate, 1)
    let b = this.#buckets.get(key)
    if (b === undefined) {
      b = { tokens: burst, atMs: nowMs, rate }
      this.#evict(nowMs, this.#bucketsMax - 1)
    } else {
      this.#buckets.delete(key)
      const elapsedMs = Math.max(0, nowMs - b.atMs)
      b.tokens = Math.min(burst, b.tokens + elapsedMs * rate / 1000)
      b.atMs = nowMs
      b.rate = rate
    }
    this.#buckets.set(key, b)
    if (b.tokens >= 1) {
      b.tokens -= 1
      return 0
    }
    return Math.max(1, Math.ceil((1 - b.tokens) * 1000 / rate))
  }

  /** Makes room: at most `keep` buckets stay, those that have refilled going first, then the least recently used. */
  #evict (nowMs: number, keep: number): void {
    if (this.#buckets.size <= keep) return
    for (const [key, b] of this.#buckets) {
      if (this.#buckets.size <= keep) return
      if (b.tokens + Math.max(0, nowMs - b.atMs) * b.rate / 1000 >= Math.max(b.rate, 1)) this.#buckets.delete(key)
    }
    for (const key of this.#buckets.keys()) {
      if (this.#buckets.size <= keep) return
      this.#buckets.delete(key)
    }
  }
}

export interface RateLimitInit {
  metadata: MetadataService
  /** Who a peer is (Security.caller). */
  caller: (peer: string) => Promise<Caller>
  now?: () => number
  bucketsMax?: number
}

/**
 * The rate limit, an RPC interceptor placed right after authorization: every call of a user takes a
 * token from that user's bucket on this node, at the rate of its tenant (`requestRate`) or else the
 * cluster's `userRequestRate` (0: unlimited). The limit is per node: a user spreading its calls over
 * n nodes gets up to n times the rate. Calls of members acting as nodes (NODE_ACTIONS) are never
 * limited. Past the rate a call is refused with RateLimited (`details.retryAfterMs`), at once: the
 * refusal costs the node next to nothing, which is the point.
 */
export function rateLimit (init: RateLimitInit): RpcInterceptor {
  const buckets = new TokenBuckets(init.bucketsMax)
  const now = init.now ?? Date.now
  const rateOf = (tenant: string | null): number => {
    const metadata = init.metadata
    if (metadata.staleRead == null) return 0
    return metadata.staleRead((view) => {
      const own = tenant === null ? undefined : view.tenant(tenant)?.requestRate
      return own ?? view.config().userRequestRate
    })
  }
  return {
    name: 'rate-limit',
    before: async (call: RpcCallInfo) => {
      if (NODE_ACTIONS.has(call.action)) return
      const c = await init.caller(call.peer)
      if (c.user === undefined) return
      const rate = rateOf(c.user.tenant)
      const retryAfterMs = buckets.take(call.peer, rate, now())
      if (retryAfterMs > 0) {
        throw new RateLimitedError(`peer ${call.peer} is past its rate of ${rate} requests per second on this node`,
          { peer: call.peer, rate, retryAfterMs })
      }
    }
  }
}
