/**
 * The RPC server's interceptor contract: how cross-cutting concerns (authorization, rate limits,
 * quotas, audit, metrics) see every call on every access path without touching a handler.
 *
 * A call passes through the server's interceptors like an onion: each `before` in order, then the
 * handler, then each `after` in reverse order. Authorization is one of them (the server has exactly
 * one); the call's params are validated right after it, so an unauthorized peer's params are never
 * parsed and no handler sees them.
 */

/** How a method moves its data: one answer, bulk bytes in (upload) or bulk bytes out (download). */
export type RpcCallKind = 'unary' | 'upload' | 'download'

/** One call as an interceptor sees it. The server owns it; interceptors only read it. */
export interface RpcCallInfo {
  /** The PeerId that Noise authenticated on the connection: the caller's proven identity. */
  readonly peer: string
  /** The method's registered name (e.g. `fs.put`). */
  readonly method: string
  /** The action authorization checks for the method (e.g. `fs.write`). */
  readonly action: string
  readonly kind: RpcCallKind
  /**
   * The params as the method's validator returned them. Undefined until validated: in the `before`
   * of authorization and of any interceptor ahead of it, and in every `after` of a call refused
   * before validation or whose params were invalid (InvalidArgument).
   */
  readonly params: unknown
  /** When the server read the call's header (Date.now() time). */
  readonly startedAtMs: number
}

export interface RpcBeforeOptions {
  /**
   * The call's deadline (a margin before the caller's) and the caller going away. A `before` that
   * waits (e.g. for a rate-limit token) must end when it fires; the server does not race it.
   */
  signal: AbortSignal
}

/** How a call ended, as every `after` sees it. */
export interface RpcCallOutcome {
  /** True when the handler succeeded and its whole answer (result, and a download's bytes) was sent. */
  ok: boolean
  /**
   * Why it failed, by the name the caller receives: a `before`'s refusal (PermissionDenied …), the
   * handler's error, DeadlineExceeded, Aborted (the caller went away or the node is stopping).
   */
  error?: { name: string, message: string }
  /** From `startedAtMs` until the answer (or error) was written or the call was given up. */
  durationMs: number
  /**
   * Bytes the caller sent for this call: the encoded call header (method, params and deadline, as
   * CBOR) plus every DATA frame payload of an upload. Framing (length prefix, kind byte) and
   * control frames (CREDIT, END) are not counted.
   */
  bytesIn: number
  /**
   * Bytes the server sent for this call: the encoded RESULT plus every DATA frame payload of a
   * download. An ERROR frame and control frames are not counted.
   */
  bytesOut: number
}

/**
 * A cross-cutting concern on the RPC server. The server's list of interceptors is fixed when it
 * starts.
 */
export interface RpcInterceptor {
  /** Names the interceptor in logs (e.g. `audit`, `rate-limit`). */
  name: string
  /**
   * Runs before the handler, in list order. Throwing a typed error (PermissionDenied, Unavailable …)
   * refuses the call with it: no later `before` and no handler run.
   */
  before?: (call: RpcCallInfo, options: RpcBeforeOptions) => Promise<void> | void
  /**
   * Runs once the call has ended, in reverse list order, for every interceptor the call reached (its
   * `before` ran, or it has none) — also for refused, failed, timed-out and aborted calls. It must be
   * synchronous and cheap: the server does not await it (a returned promise is left to run, its
   * rejection logged), and an exception it throws is logged and swallowed, so an audit or metrics
   * failure never fails, delays or hangs a call. Work that waits (writing an audit record) belongs
   * in the interceptor's own bounded queue.
   */
  after?: (call: RpcCallInfo, outcome: RpcCallOutcome) => void
}
