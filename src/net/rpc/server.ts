import { setMaxListeners } from 'node:events'
import { logger } from '@libp2p/logger'
import {
  AbortedError, Deadline, DeadlineExceededError, InvalidArgumentError, MalformedFrameError, UnavailableError, UnknownMethodError, errorToWire
} from '@dfs/api'
import type { RpcCallInfo, RpcCallOutcome, RpcInterceptor } from '@dfs/api'
import {
  CREDIT_BATCH_FRAMES, DATA_CHUNK_BYTES_MAX, DATA_WINDOW_FRAMES, RPC_INBOUND_STREAMS_MAX, RPC_PEER_IDLE_TIMEOUT_MS_DEFAULT, RPC_PROTOCOL,
  RPC_STREAM_IDLE_CLOSE_MS
} from '../constants.js'
import { FramedStream, FrameKind, type CallHeader, type Frame } from './frames.js'
import type { Authorizer, RpcMethod } from './types.js'
import type { Host } from '../host.js'
import type { Connection, Stream } from '@libp2p/interface'

const log = logger('dfs:net:rpc:server')

/** How much earlier than the caller's deadline a handler is stopped (at most a tenth of it). */
const DEADLINE_MARGIN_MS = 500

/** The time a handler gets from a caller who gives up after `ms`: a margin sooner, so its answer arrives in time. */
function withMargin (ms: number): number {
  return Math.max(1, ms - Math.min(DEADLINE_MARGIN_MS, Math.floor(ms / 10)))
}

/**
 * Errors a handler's wait may end with at its deadline that say more than "out of time" and reach
 * the caller as they are: NoQuorum (no leader could be reached, e.g. in a minority partition).
 */
const DEADLINE_VERDICTS = new Set(['DeadlineExceeded', 'NoQuorum'])

/** The interceptors `authorization` made: the server validates a call's params right after one. */
const authorizations = new WeakSet<RpcInterceptor>()

/**
 * The interceptor that authorizes every call: `authorize(peer, action)` must resolve, or the call is
 * refused with its error (PermissionDenied) before its params are parsed.
 */
export function authorization (authorize: Authorizer): RpcInterceptor {
  const interceptor: RpcInterceptor = Object.freeze({
    name: 'authorize',
    before: async (call: RpcCallInfo, { signal }: { signal: AbortSignal }) => { await authorize(call.peer, call.action, { signal }) }
  })
  authorizations.add(interceptor)
  return interceptor
}

export interface RpcServerInit {
  host: Host
  /** Installs `authorization(authorize)` as the first interceptor. Give it, or put an `authorization(…)` among `interceptors`. */
  authorize?: Authorizer
  /**
   * Run for every call, in this order (after `authorize` when given). Exactly one of the server's
   * interceptors authorizes; one placed ahead of it (an audit log that records refusals) sees every
   * call, including the refused ones, but not its params in `before`.
   */
  interceptors?: RpcInterceptor[]
  /**
   * The longest a streaming call waits on its caller — for its next frame, or for room to send it
   * one — before it ends with DeadlineExceeded (RPC_PEER_IDLE_TIMEOUT_MS_DEFAULT). The server's own
   * bound, whatever deadline the caller's header asks for: a peer that stops mid-upload or stops
   * reading a download frees its stream, buffers and handler in this time.
   */
  peerIdleTimeoutMs?: number
}

/**
 * Reads and writes of a streaming call that wait on the caller, each bounded by the server's idle
 * timeout (time the handler spends between them is not counted).
 *
 * One AbortController and at most one pending timer per call, not per read or write: a timer and an
 * `AbortSignal.any` for every frame were ~2 % of a node's CPU at 64 clients (bench:cluster
 * --profile). The timer is armed by the first wait and, when it fires, re-armed for what is left of
 * the wait under way (or left disarmed between waits); `close` cancels it. A call's reads and
 * writes never overlap (an upload writes CREDIT between its reads, a download reads CREDIT between
 * its writes), so one wait is under way at a time.
 */
class PeerIo {
  readonly #framed: FramedStream
  readonly #callSignal: AbortSignal
  readonly #idleMs: number
  readonly #method: string
  /** Aborted by the call's signal or by an idle wait; made by the first wait. */
  #controller: AbortController | undefined
  readonly #onCallAbort = (): void => { this.#controller?.abort(this.#callSignal.reason) }
  #timer: ReturnType<typeof setTimeout> | undefined
  /** When the wait under way started (performance.now()), and what it waits for; undefined between waits. */
  #waitingSince: number | undefined
  #waitingFor = ''
  /** Set when an idle wait ended the call (rather than the call's own signal). */
  #idleError: DeadlineExceededError | undefined

  constructor (framed: FramedStream, signal: AbortSignal, idleMs: number, method: string) {
    this.#framed = framed
    this.#callSignal = signal
    this.#idleMs = idleMs
    this.#method = method
  }

  async read (): Promise<Frame | null> {
    return await this.#wait(async (signal) => await this.#framed.read({ signal }), 'sent nothing')
  }

  async write (frame: Frame): Promise<number> {
    return await this.#wait(async (signal) => await this.#framed.write(frame, { signal }), 'read nothing')
  }

  /** Stops the idle timer and lets go of the call's signal. Idempotent. */
  close (): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    this.#timer = undefined
    this.#callSignal.removeEventListener('abort', this.#onCallAbort)
  }

  #signal (): AbortSignal {
    if (this.#controller === undefined) {
      this.#controller = new AbortController()
      if (this.#callSignal.aborted) this.#controller.abort(this.#callSignal.reason)
      else this.#callSignal.addEventListener('abort', this.#onCallAbort, { once: true })
    }
    return this.#controller.signal
  }

  #arm (ms: number): void {
    this.#timer = setTimeout(() => {
      this.#timer = undefined
      if (this.#waitingSince === undefined) return
      const left = this.#waitingSince + this.#idleMs - performance.now()
      if (left > 0) {
        this.#arm(left)
        return
      }
      // the error is made only when the wait times out: an Error's stack on every frame of every
      // stream was ~2 % of a node's CPU at 64 clients
      this.#idleError = new DeadlineExceededError(`the caller of ${this.#method} ${this.#waitingFor} for ${this.#idleMs} ms`,
        { idleTimeoutMs: this.#idleMs, side: 'server' })
      this.#controller?.abort(this.#idleError)
    }, Math.max(1, Math.ceil(ms)))
  }

  #timedOut (): DeadlineExceededError | undefined {
    return this.#idleError
  }

  async #wait<T> (op: (signal: AbortSignal) => Promise<T>, what: string): Promise<T> {
    const signal = this.#signal()
    if (this.#idleError !== undefined) throw this.#idleError
    this.#waitingSince = performance.now()
    this.#waitingFor = what
    if (this.#timer === undefined) this.#arm(this.#idleMs)
    try {
      return await op(signal)
    } catch (err) {
      // (read through a method: the check above narrowed the field to undefined for the compiler)
      const idle = this.#timedOut()
      if (idle !== undefined && !this.#callSignal.aborted) throw idle
      throw err
    } finally {
      this.#waitingSince = undefined
    }
  }
}

/**
 * Serves `/dfs/rpc/1.0.0`. Every call is attributed to the PeerId Noise proved for the connection and
 * passes the interceptors (see RpcInterceptor in `@dfs/api`), one of which authorizes it, before its
 * handler runs. Bad frames are answered with a typed error and the stream is closed; the node keeps
 * serving everyone else.
 */
export class RpcServer {
  readonly #host: Host
  readonly #methods = new Map<string, RpcMethod>()
  readonly #active = new Set<Stream>()
  /** The interceptors as configured; `use` adds to it until start. */
  readonly #interceptors: RpcInterceptor[] = []
  /** The interceptors calls pass, fixed by `start`: each `before` in order, each `after` in reverse. */
  #chain: readonly RpcInterceptor[] = []
  /** The index in `#chain` of the one authorization; params are validated right after its `before`. */
  #authorizedAt = -1
  /** Calls being served, per peer (entries removed at zero). */
  readonly #inFlight = new Map<string, number>()
  readonly #peerIdleMs: number
  #started = false

  constructor (init: RpcServerInit) {
    this.#host = init.host
    this.#peerIdleMs = init.peerIdleTimeoutMs ?? RPC_PEER_IDLE_TIMEOUT_MS_DEFAULT
    if (!Number.isSafeInteger(this.#peerIdleMs) || this.#peerIdleMs < 1) throw new Error(`peerIdleTimeoutMs must be a positive integer, got ${this.#peerIdleMs}`)
    if (init.authorize !== undefined) this.#interceptors.push(authorization(init.authorize))
    this.#interceptors.push(...(init.interceptors ?? []))
  }

  /** Adds interceptors after those already configured. Only before `start`, which fixes the list. */
  use (...interceptors: RpcInterceptor[]): void {
    if (this.#started) throw new Error('RPC interceptors are fixed once the server has started')
    this.#interceptors.push(...interceptors)
  }

  /** Calls from `peer` being served now (admission keeps a stranger's connection open while one runs). */
  callsInFlight (peer: string): number {
    return this.#inFlight.get(peer) ?? 0
  }

  register (...methods: RpcMethod[]): void {
    for (const m of methods) {
      if (this.#methods.has(m.name)) throw new Error(`RPC method ${m.name} registered twice`)
      this.#methods.set(m.name, m)
    }
  }

  async start (): Promise<void> {
    const authorizedAt = this.#interceptors.findIndex((i) => authorizations.has(i))
    if (authorizedAt < 0) throw new Error('an RPC server needs an authorization interceptor (init.authorize)')
    if (this.#interceptors.findLastIndex((i) => authorizations.has(i)) !== authorizedAt) throw new Error('an RPC server authorizes once: two authorization interceptors')
    this.#chain = Object.freeze([...this.#interceptors])
    this.#authorizedAt = authorizedAt
    await this.#host.handle(RPC_PROTOCOL, (stream, connection) => {
      void this.#serveStream(stream, connection)
    }, { maxInboundStreams: RPC_INBOUND_STREAMS_MAX, runOnLimitedConnection: false })
    this.#started = true
  }

  async stop (): Promise<void> {
    if (!this.#started) return
    this.#started = false
    await this.#host.unhandle(RPC_PROTOCOL)
    for (const s of this.#active) s.abort(new AbortedError('the node is stopping'))
  }

  /**
   * Serves a call made in this process on behalf of `peer` — an access layer of this node (the S3
   * gateway) acting as the user a credential of its own protocol proved — exactly as if `peer` had
   * sent it over the network: every interceptor runs (authorization first, then rate limits, audit …)
   * and the params are validated before the handler sees them. `body`: an upload's bytes. A
   * download's `after`s run when its body ends, fails or is left. `signal` ends the call (e.g. the
   * HTTP client went away); `timeoutMs` bounds it (none by default: a streaming body is bounded by
   * its own protocol's idle timeouts and the handler's limits).
   */
  async invokeLocal (peer: string, name: string, rawParams: unknown, options: LocalCallOptions = {}): Promise<LocalCallResult> {
    if (!this.#started) throw new UnavailableError('the RPC server is not serving')
    const method = this.#methods.get(name)
    if (method == null) throw new UnknownMethodError(`unknown method ${JSON.stringify(name)}`, { method: name })
    // a caller gone already (e.g. the HTTP client hung up while its request queued): nothing runs
    if (options.signal?.aborted === true) throw new AbortedError(`${name} was called after its caller left`)
    const deadline = new Deadline(options.timeoutMs ?? LOCAL_CALL_TIMEOUT_MS_MAX, options.signal)
    const signal = deadline.signal
    setMaxListeners(Infinity, signal)
    const started = Date.now()
    const chain = this.#chain
    const call: { -readonly [K in keyof RpcCallInfo]: RpcCallInfo[K] } = {
      peer, method: method.name, action: method.action, kind: method.kind, params: undefined, startedAtMs: started
    }
    let reached = 0
    const io: CallBytes = { bytesIn: 0, bytesOut: 0 }
    let ended = false
    const end = (failure: unknown): void => {
      if (ended) return
      ended = true
      deadline.clear()
      const outcome: RpcCallOutcome = { ok: failure === undefined, durationMs: Date.now() - started, bytesIn: io.bytesIn, bytesOut: io.bytesOut }
      if (failure !== undefined) {
        const wire = errorToWire(failure)
        outcome.error = { name: wire.name, message: wire.message }
      }
      afterCall(chain, reached, call, outcome)
    }
    const failed = (err: unknown): Error => deadline.expired && !DEADLINE_VERDICTS.has((err as Error)?.name)
      ? new DeadlineExceededError(`${name} did not finish within ${options.timeoutMs ?? LOCAL_CALL_TIMEOUT_MS_MAX} ms`, { timeoutMs: options.timeoutMs })
      : err as Error
    try {
      for (let i = 0; i < chain.length; i++) {
        reached = i + 1
        await chain[i].before?.(call, { signal })
        if (i === this.#authorizedAt) call.params = method.params(rawParams)
      }
      const params = call.params
      switch (method.kind) {
        case 'unary': {
          const result = await method.handle({ peer, params, signal })
          end(undefined)
          return { result }
        }
        case 'upload': {
          if (options.body === undefined) throw new InvalidArgumentError(`${name} is an upload: it needs a body`)
          const source = options.body
          let drained = false
          async function * counted (): AsyncGenerator<Uint8Array> {
            for await (const chunk of source) {
              io.bytesIn += chunk.byteLength
              yield chunk
            }
            drained = true
          }
          const result = await method.handle({ peer, params, signal, body: counted() })
          // as over the network (#serveUpload): an upload's answer covers its whole body
          if (!drained) throw new MalformedFrameError(`${method.name} returned before the upload ended`)
          end(undefined)
          return { result }
        }
        case 'download': {
          const reply = await method.handle({ peer, params, signal })
          const inner = reply.body
          async function * body (): AsyncGenerator<Uint8Array> {
            // a caller that stops reading early ends the call as aborted
            let failure: unknown = new AbortedError('the caller left the download before its end')
            try {
              for await (const chunk of inner) {
                io.bytesOut += chunk.byteLength
                yield chunk
              }
              failure = undefined
            } catch (err) {
              failure = failed(err)
              throw failure
            } finally {
              end(failure)
            }
          }
          return { result: reply.result, body: body() }
        }
        default: {
          const never: never = method
          throw new Error(`RPC method of unknown kind ${JSON.stringify((never as RpcMethod).kind)}`)
        }
      }
    } catch (err) {
      const error = failed(err)
      end(error)
      throw error
    }
  }

  async #serveStream (stream: Stream, connection: Connection): Promise<void> {
    const peer = connection.remotePeer.toString()
    const framed = new FramedStream(stream)
    this.#active.add(stream)
    try {
      while (true) {
        const idle = new Deadline(RPC_STREAM_IDLE_CLOSE_MS)
        let frame
        try {
          frame = await framed.read({ signal: idle.signal })
        } catch (err) {
          if (idle.expired) { log('stream from %s idle for %d ms: closing it', peer, RPC_STREAM_IDLE_CLOSE_MS); break }
          await this.#refuse(framed, peer, err as Error)
          return
        } finally {
          idle.clear()
        }
        if (frame == null) { log('stream from %s ended by the caller', peer); break }
        if (frame.kind !== FrameKind.Header) {
          await this.#refuse(framed, peer, new MalformedFrameError(`expected a call header, got frame kind ${frame.kind}`))
          return
        }
        this.#inFlight.set(peer, this.callsInFlight(peer) + 1)
        let clean: boolean
        try {
          clean = await this.#serveCall(framed, peer, frame.header, frame.bodyBytes ?? 0)
        } finally {
          const n = this.callsInFlight(peer) - 1
          if (n <= 0) this.#inFlight.delete(peer)
          else this.#inFlight.set(peer, n)
        }
        if (!clean) {
          log('%s from %s did not end at a call boundary: closing the stream', frame.header.method, peer)
          await framed.stream.close().catch(() => framed.stream.abort(new Error('close failed')))
          return
        }
      }
      await stream.close().catch(() => {})
    } catch (err) {
      log.error('stream from %s failed: %s', peer, (err as Error).message)
      stream.abort(err as Error)
    } finally {
      this.#active.delete(stream)
    }
  }

  /** Answers a protocol violation with its typed error, then closes the stream. */
  async #refuse (framed: FramedStream, peer: string, err: Error): Promise<void> {
    log('refusing stream from %s: %s: %s', peer, err.name, err.message)
    try {
      await framed.write({ kind: FrameKind.Error, error: errorToWire(err) }, { signal: AbortSignal.timeout(1000) })
      await framed.stream.close({ signal: AbortSignal.timeout(1000) })
    } catch {
      framed.stream.abort(err)
    }
  }

  /**
   * Serves one call. Resolves true when the stream is at a call boundary and may carry another.
   * `headerBytes`: the size of the encoded header, the first of the call's bytes in.
   */
  async #serveCall (framed: FramedStream, peer: string, header: CallHeader, headerBytes: number): Promise<boolean> {
    const method = this.#methods.get(header.method)
    // stop a little before the caller gives up, so the handler's own typed error (NoQuorum …)
    // reaches the caller rather than its bare DeadlineExceeded
    const deadline = new Deadline(withMargin(header.timeoutMs))
    /** How the deadline that ends the handler reads in a DeadlineExceeded. */
    let limitText = `within ${header.timeoutMs} ms`
    let closed = false
    const onClose = (): void => {
      closed = true
      deadline.abort(new AbortedError('the caller closed the stream'))
    }
    framed.stream.addEventListener('close', onClose, { once: true })
    const signal = deadline.signal
    setMaxListeners(Infinity, signal)
    const started = Date.now()
    const chain = this.#chain
    /** The call as interceptors see it; unset for an unknown method, which no interceptor sees. */
    let call: { -readonly [K in keyof RpcCallInfo]: RpcCallInfo[K] } | undefined
    /** How many interceptors the call has reached: their `after`s run when it ends. */
    let reached = 0
    const io: CallBytes = { bytesIn: headerBytes, bytesOut: 0 }
    let ok = false
    let failure: Error | undefined
    try {
      if (method == null) throw new UnknownMethodError(`unknown method ${JSON.stringify(header.method)}`, { method: header.method })
      call = { peer, method: method.name, action: method.action, kind: method.kind, params: undefined, startedAtMs: started }
      for (let i = 0; i < chain.length; i++) {
        reached = i + 1
        await chain[i].before?.(call, { signal })
        // parsed only for an authorized peer, and before any interceptor after authorization
        if (i === this.#authorizedAt) call.params = method.params(header.params)
      }
      const params = call.params
      switch (method.kind) {
        case 'unary': {
          const result = await method.handle({ peer, params, signal })
          io.bytesOut += await framed.write({ kind: FrameKind.Result, value: result }, { signal })
          ok = true
          return true
        }
        case 'upload': {
          // once the bytes have ended the caller only waits for the answer, for its idle deadline
          const idleMs = header.idleTimeoutMs
          const onEnded = idleMs === undefined
            ? () => {}
            : () => { deadline.shorten(withMargin(idleMs)); limitText = `within ${idleMs} ms of the end of its upload` }
          const clean = await this.#serveUpload(framed, peer, params, method, signal, onEnded, io)
          ok = true
          return clean
        }
        case 'download': {
          const clean = await this.#serveDownload(framed, peer, params, method, signal, io)
          ok = true
          return clean
        }
        default: {
          const never: never = method
          throw new Error(`RPC method of unknown kind ${JSON.stringify((never as RpcMethod).kind)}`)
        }
      }
    } catch (err) {
      const error = failure = deadline.expired && !DEADLINE_VERDICTS.has((err as Error)?.name)
        ? new DeadlineExceededError(`${header.method} did not finish ${limitText}`,
          { timeoutMs: header.timeoutMs, ...(header.idleTimeoutMs !== undefined ? { idleTimeoutMs: header.idleTimeoutMs } : {}) })
        : err as Error
      log('%s from %s failed after %d ms: %s: %s', header.method, peer, Date.now() - started, error?.name, error?.message)
      if (closed) return false
      try {
        await framed.write({ kind: FrameKind.Error, error: errorToWire(error) }, { signal: AbortSignal.timeout(5000) })
      } catch {
        return false
      }
      // a unary call that failed leaves the stream at a call boundary; a streaming one may not
      return method?.kind === 'unary' || method == null
    } finally {
      deadline.clear()
      framed.stream.removeEventListener('close', onClose)
      if (call !== undefined) {
        const outcome: RpcCallOutcome = { ok, durationMs: Date.now() - started, bytesIn: io.bytesIn, bytesOut: io.bytesOut }
        if (!ok) {
          const wire = errorToWire(failure ?? new AbortedError('the call ended without an answer'))
          outcome.error = { name: wire.name, message: wire.message }
        }
        afterCall(chain, reached, call, outcome)
      }
    }
  }

  /** `onEnded`: called when the caller's END arrives (its bytes are all in). `io`: counts DATA and RESULT bytes. */
  async #serveUpload (framed: FramedStream, peer: string, params: unknown, method: RpcMethod & { kind: 'upload' }, signal: AbortSignal,
    onEnded: () => void, io: CallBytes): Promise<boolean> {
    let ended = false
    // every upload starts with an implicit window of DATA_WINDOW_FRAMES (no round trip before data)
    let credit = DATA_WINDOW_FRAMES
    /** DATA frames consumed and not yet granted back. */
    let owed = 0
    const peer$ = new PeerIo(framed, signal, this.#peerIdleMs, method.name)
    async function * body (): AsyncGenerator<Uint8Array> {
      while (!ended) {
        const frame = await peer$.read()
        if (frame == null) throw new AbortedError('the caller closed the stream before the end of the upload')
        if (frame.kind === FrameKind.End) {
          ended = true
          onEnded()
          return
        }
        if (frame.kind !== FrameKind.Data) throw new MalformedFrameError(`expected DATA or END in an upload, got frame kind ${frame.kind}`)
        if (credit === 0) throw new MalformedFrameError('DATA frame beyond the granted credit')
        credit -= 1
        io.bytesIn += frame.bytes.byteLength
        // the frame's pieces as they arrived: no copy into one buffer
        if (frame.bytes instanceof Uint8Array) yield frame.bytes
        else yield * frame.bytes
        // the consumer is done with the chunk: granted back in batches (see CREDIT_BATCH_FRAMES),
        // so an upload that fits in half the window — every small put — gets no CREDIT at all
        if (++owed >= CREDIT_BATCH_FRAMES) {
          await peer$.write({ kind: FrameKind.Credit, frames: owed })
          credit += owed
          owed = 0
        }
      }
    }
    try {
      const result = await method.handle({ peer, params, signal, body: body() })
      if (!ended) throw new MalformedFrameError(`${method.name} returned before the upload ended`)
      io.bytesOut += await peer$.write({ kind: FrameKind.Result, value: result })
      return true
    } finally {
      peer$.close()
    }
  }

  /** `io`: counts RESULT and DATA bytes. */
  async #serveDownload (framed: FramedStream, peer: string, params: unknown, method: RpcMethod & { kind: 'download' }, signal: AbortSignal,
    io: CallBytes): Promise<boolean> {
    const reply = await method.handle({ peer, params, signal })
    const peer$ = new PeerIo(framed, signal, this.#peerIdleMs, method.name)
    try {
      io.bytesOut += await peer$.write({ kind: FrameKind.Result, value: reply.result })
      // every download starts with an implicit window of DATA_WINDOW_FRAMES
      let credit = DATA_WINDOW_FRAMES
      let callerEnded = false
      const takeCredit = async (): Promise<void> => {
        while (credit === 0) {
          const frame = await peer$.read()
          if (frame == null) throw new AbortedError('the caller closed the stream during a download')
          if (frame.kind === FrameKind.End) {
            callerEnded = true
            throw new AbortedError('the caller ended the download early')
          }
          if (frame.kind !== FrameKind.Credit) throw new MalformedFrameError(`expected CREDIT during a download, got frame kind ${frame.kind}`)
          credit += frame.frames
          if (credit > DATA_WINDOW_FRAMES) throw new MalformedFrameError('the caller granted more credit than the window')
        }
      }
      for await (const chunk of reply.body) {
        for (let offset = 0; offset < chunk.byteLength; offset += DATA_CHUNK_BYTES_MAX) {
          await takeCredit()
          credit -= 1
          io.bytesOut += await peer$.write({ kind: FrameKind.Data, bytes: chunk.subarray(offset, offset + DATA_CHUNK_BYTES_MAX) })
        }
      }
      await peer$.write({ kind: FrameKind.End })
      // the caller answers END with END; credits it sent meanwhile are discarded
      while (!callerEnded) {
        const frame = await peer$.read()
        if (frame == null) return false
        if (frame.kind === FrameKind.End) break
        if (frame.kind !== FrameKind.Credit) throw new MalformedFrameError(`expected END after a download, got frame kind ${frame.kind}`)
      }
      return !callerEnded
    } finally {
      peer$.close()
    }
  }
}

/** Options of RpcServer.invokeLocal. */
export interface LocalCallOptions {
  signal?: AbortSignal
  /** Longest the call may take (LOCAL_CALL_TIMEOUT_MS_MAX when absent). */
  timeoutMs?: number
  /** An upload's bytes. */
  body?: AsyncIterable<Uint8Array>
}

/** What RpcServer.invokeLocal answers: the result, and a download's bytes. */
export interface LocalCallResult {
  result: unknown
  /**
   * A download's bytes. Start reading it, to the end or until `return()`: only a started generator
   * runs its cleanup, which ends the call (its `after`s, its deadline) and lets go of the extents.
   */
  body?: AsyncGenerator<Uint8Array>
}

/**
 * Longest a call made in this process may take: a put's own limit (PUT_DURATION_MAX_MS, 6 h) and the
 * access layer's idle timeouts end a slow one first; this only bounds a call nothing else would.
 */
export const LOCAL_CALL_TIMEOUT_MS_MAX = 7 * 3600_000

/** A call's bytes so far, as RpcCallOutcome counts them. */
interface CallBytes { bytesIn: number, bytesOut: number }

/**
 * Runs the `after` of the first `reached` interceptors of `chain`, last first. Never throws and never
 * waits: an interceptor's failure is logged, and a promise it returns is not awaited.
 */
function afterCall (chain: readonly RpcInterceptor[], reached: number, call: RpcCallInfo, outcome: RpcCallOutcome): void {
  for (let i = reached - 1; i >= 0; i--) {
    const interceptor = chain[i]
    if (interceptor.after === undefined) continue
    const onError = (err: unknown): void => { log.error('interceptor %s failed after %s from %s: %s', interceptor.name, call.method, call.peer, (err as Error | undefined)?.message ?? err) }
    try {
      const pending: unknown = interceptor.after(call, outcome)
      if (pending instanceof Promise) pending.catch(onError)
    } catch (err) {
      onError(err)
    }
  }
}
