import { setMaxListeners } from 'node:events'
import { logger } from '@libp2p/logger'
import {
  Deadline, AbortedError, DeadlineExceededError, DfsError, MalformedFrameError, NodeUnreachableError, errorFromWire,
  type DownloadMethodName, type RpcParams, type RpcResult, type UnaryMethodName, type UploadMethodName
} from '@dfs/api'
import {
  CALL_TIMEOUT_MS_DEFAULT, CREDIT_BATCH_FRAMES, DATA_CHUNK_BYTES_MAX, DATA_WINDOW_FRAMES, DIAL_TIMEOUT_MS_DEFAULT, RPC_IDLE_STREAMS_MAX,
  RPC_PROTOCOL, RPC_STREAM_REUSE_IDLE_MS, STREAM_IDLE_TIMEOUT_MS_DEFAULT
} from '../constants.js'
import { CALL_TIMEOUT_MS_MAX, FramedStream, FrameKind, type Frame } from './frames.js'
import { IdleTimer } from './idle-timer.js'
import type { Host } from '../host.js'
import type { PeerId } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'

const log = logger('dfs:net:rpc:client')

export interface CallOptions {
  signal?: AbortSignal
  /** Deadline of a unary call, or the longest a streaming call may go without progress. */
  timeoutMs?: number
}

export interface RpcClientInit {
  host: Host
  /** The node: a PeerId it is already connected to or can find, or an address (with or without /p2p). */
  target: PeerId | Multiaddr
  dialTimeoutMs?: number
  /** How long an idle stream may wait in the pool and still carry a call; see RPC_STREAM_REUSE_IDLE_MS. */
  reuseIdleMs?: number
}

/** Longest a client waits for an idle stream's graceful close before aborting it. */
const STREAM_CLOSE_TIMEOUT_MS = 1000

/**
 * Calls `/dfs/rpc/1.0.0` on one node, typed by the RPC contract (`RpcContract` in `@dfs/api`). Streams are reused for consecutive calls (a new stream costs a
 * protocol negotiation); at most RPC_IDLE_STREAMS_MAX idle streams are kept, each for at most
 * RPC_STREAM_REUSE_IDLE_MS: the server closes a stream idle for RPC_STREAM_IDLE_CLOSE_MS, and a call
 * sent on one it is closing at that moment would fail with NodeUnreachable, as a request on an HTTP
 * keep-alive connection does when the server times it out.
 */
export class RpcClient {
  readonly #host: Host
  readonly #target: PeerId | Multiaddr
  readonly #dialTimeoutMs: number
  readonly #reuseIdleMs: number
  /** Idle streams, the most recently used last, each with when it went idle (performance.now()). */
  readonly #idle: Array<{ framed: FramedStream, since: number }> = []
  /** Streams #take handed out again from the pool (see #firstWrite). */
  readonly #pooled = new WeakSet<FramedStream>()
  #remotePeer: PeerId | undefined

  constructor (init: RpcClientInit) {
    this.#host = init.host
    this.#target = init.target
    this.#dialTimeoutMs = init.dialTimeoutMs ?? DIAL_TIMEOUT_MS_DEFAULT
    this.#reuseIdleMs = init.reuseIdleMs ?? RPC_STREAM_REUSE_IDLE_MS
  }

  /** The PeerId of the node, known once a call has connected. */
  get remotePeer (): PeerId | undefined {
    return this.#remotePeer
  }

  /** Connects (if needed) and returns the node's PeerId. */
  async connect (options: CallOptions = {}): Promise<PeerId> {
    const framed = await this.#take(options.signal)
    this.#give(framed)
    return this.#remotePeer as PeerId
  }

  /** Calls a unary method of the RPC contract (`RpcContract` in `@dfs/api`). */
  async call<M extends UnaryMethodName> (method: M, params: RpcParams<M>, options: CallOptions = {}): Promise<RpcResult<M>> {
    return await this.callUnchecked<RpcResult<M>>(method, params, options)
  }

  /**
   * Calls any method with any params, its result typed as the caller says: for methods outside the
   * contract (tests of the RPC layer itself) and params a well-behaved caller would not send (tests of
   * the node's checks). Everything else uses `call`.
   */
  async callUnchecked<R = unknown> (method: string, params: unknown, options: CallOptions = {}): Promise<R> {
    const timeoutMs = options.timeoutMs ?? CALL_TIMEOUT_MS_DEFAULT
    const deadline = new Deadline(timeoutMs, options.signal)
    const signal = deadline.signal
    setMaxListeners(Infinity, signal)
    deadlines.set(signal, { what: method, timeoutMs })
    let framed: FramedStream | undefined
    try {
      framed = await this.#take(signal)
      framed = await this.#firstWrite(framed, signal, async (f) => { await f.write({ kind: FrameKind.Header, header: { method, params, timeoutMs } }, { signal }) })
      const frame = await readFrame(framed, signal, method)
      if (frame.kind === FrameKind.Result) {
        this.#give(framed)
        return frame.value as R
      }
      if (frame.kind === FrameKind.Error) {
        this.#give(framed)
        throw errorFromWire(frame.error)
      }
      throw new MalformedFrameError(`unexpected frame kind ${frame.kind} in reply to ${method}`)
    } catch (err) {
      throw this.#fail(framed, err, signal, method)
    } finally {
      deadline.clear()
    }
  }

  /**
   * Sends `body` as the call's bulk bytes, under the server's flow control. Chunks are sent as they
   * are, not copied: a body must not reuse a chunk's memory after yielding it.
   */
  async upload<M extends UploadMethodName> (method: M, params: RpcParams<M>, body: AsyncIterable<Uint8Array>, options: CallOptions = {}): Promise<RpcResult<M>> {
    return await this.uploadUnchecked<RpcResult<M>>(method, params, body, options)
  }

  /** `upload` of any method with any params (see `callUnchecked`). */
  async uploadUnchecked<R = unknown> (method: string, params: unknown, body: AsyncIterable<Uint8Array>, options: CallOptions = {}): Promise<R> {
    const { idle, idleMs, signal } = streamSignal(options, method)
    let framed: FramedStream | undefined
    try {
      framed = await this.#take(signal)
      let f = framed
      /** No frame of this call written yet: the first write may move the call to a new stream (#firstWrite). */
      let first = true
      // Frames leave in as few stream writes as the body allows: the header with the first DATA
      // frame, and END with the last one. So the last DATA frame of each chunk is held until the
      // body says whether another chunk follows (a source that is slow to produce delays that one
      // frame, never the flow). A body of one chunk up to DATA_CHUNK_BYTES_MAX — every small put —
      // is then one write and one muxer frame for the node, and an empty body too.
      const pending: Frame[] = [{ kind: FrameKind.Header, header: { method, params, timeoutMs: CALL_TIMEOUT_MS_MAX, idleTimeoutMs: idleMs } }]
      let held: Frame | undefined
      // the implicit initial window: no round trip before the first bytes
      let credit = DATA_WINDOW_FRAMES
      /** Reads server frames until there is credit; a RESULT or ERROR here ends the call early. */
      const awaitCredit = async (): Promise<Frame | undefined> => {
        while (credit === 0) {
          const frame = await readFrame(f, signal, method)
          idle.touch()
          if (frame.kind === FrameKind.Credit) credit += frame.frames
          else return frame
        }
        return undefined
      }
      /**
       * Sends the held DATA frame (within credit) with whatever else is pending, and END after it
       * when `end`. Resolves undefined, or the server's answer if it ended the call early.
       */
      const sendHeld = async (end: boolean): Promise<Frame | undefined> => {
        // nothing held yet: the header waits for the first DATA frame (or END)
        if (held === undefined && !end) return undefined
        if (held !== undefined) {
          const early = await awaitCredit()
          if (early != null) return early
          credit -= 1
          pending.push(held)
          held = undefined
        }
        if (end) pending.push({ kind: FrameKind.End })
        const frames = pending.splice(0)
        if (first) {
          first = false
          f = framed = await this.#firstWrite(f, signal, async (s) => { await s.writeMany(frames, { signal }) })
        } else {
          await f.writeMany(frames, { signal })
        }
        idle.touch()
        return undefined
      }
      for await (const chunk of body) {
        for (let offset = 0; offset < chunk.byteLength; offset += DATA_CHUNK_BYTES_MAX) {
          const early = await sendHeld(false)
          if (early != null) return this.#finish<R>(f, early, method, false)
          held = { kind: FrameKind.Data, bytes: chunk.subarray(offset, offset + DATA_CHUNK_BYTES_MAX) }
        }
      }
      const early = await sendHeld(true)
      if (early != null) return this.#finish<R>(f, early, method, false)
      while (true) {
        const frame = await readFrame(f, signal, method)
        idle.touch()
        if (frame.kind !== FrameKind.Credit) return this.#finish<R>(f, frame, method, true)
      }
    } catch (err) {
      throw this.#fail(framed, err, signal, method)
    } finally {
      idle.clear()
    }
  }

  /** Starts a download: resolves with the call's result; `body` yields the bulk bytes. */
  async download<M extends DownloadMethodName> (method: M, params: RpcParams<M>, options: CallOptions = {}): Promise<{ result: RpcResult<M>, body: AsyncGenerator<Uint8Array> }> {
    return await this.downloadUnchecked<RpcResult<M>>(method, params, options)
  }

  /** `download` of any method with any params (see `callUnchecked`). */
  async downloadUnchecked<R = unknown> (method: string, params: unknown, options: CallOptions = {}): Promise<{ result: R, body: AsyncGenerator<Uint8Array> }> {
    const { idle, idleMs, signal } = streamSignal(options, method)
    let framed: FramedStream | undefined
    try {
      framed = await this.#take(signal)
      framed = await this.#firstWrite(framed, signal, async (f) => {
        await f.write({ kind: FrameKind.Header, header: { method, params, timeoutMs: CALL_TIMEOUT_MS_MAX, idleTimeoutMs: idleMs } }, { signal })
      })
      const first = await readFrame(framed, signal, method)
      idle.touch()
      if (first.kind === FrameKind.Error) throw errorFromWire(first.error)
      if (first.kind !== FrameKind.Result) throw new MalformedFrameError(`unexpected frame kind ${first.kind} starting ${method}`)
      return { result: first.value as R, body: this.#downloadBody(framed, idle, signal, method) }
    } catch (err) {
      idle.clear()
      throw this.#fail(framed, err, signal, method)
    }
  }

  async * #downloadBody (framed: FramedStream, idle: IdleTimer, signal: AbortSignal, method: string): AsyncGenerator<Uint8Array> {
    let done = false
    /** DATA frames consumed and not yet granted back. */
    let owed = 0
    try {
      while (true) {
        const frame = await readFrame(framed, signal, method)
        idle.touch()
        if (frame.kind === FrameKind.End) break
        if (frame.kind === FrameKind.Error) throw errorFromWire(frame.error)
        if (frame.kind !== FrameKind.Data) throw new MalformedFrameError(`unexpected frame kind ${frame.kind} in ${method}`)
        // the frame's pieces as they arrived: no copy into one buffer
        if (frame.bytes instanceof Uint8Array) yield frame.bytes
        else yield * frame.bytes
        // consumed: granted back in batches (see CREDIT_BATCH_FRAMES)
        if (++owed >= CREDIT_BATCH_FRAMES) {
          await framed.write({ kind: FrameKind.Credit, frames: owed }, { signal })
          owed = 0
        }
      }
      await framed.write({ kind: FrameKind.End }, { signal })
      done = true
      this.#give(framed)
    } catch (err) {
      done = true
      throw this.#fail(framed, err, signal, method)
    } finally {
      idle.clear()
      // the consumer stopped early: the stream is mid-call and cannot be reused
      if (!done) framed.stream.abort(new AbortedError('download abandoned'))
    }
  }

  #finish<R> (framed: FramedStream, frame: Frame, method: string, reusable: boolean): R {
    if (frame.kind === FrameKind.Result) {
      if (reusable) this.#give(framed)
      else framed.stream.abort(new AbortedError('call ended early'))
      return frame.value as R
    }
    if (frame.kind === FrameKind.Error) {
      framed.stream.abort(new AbortedError('call failed'))
      throw errorFromWire(frame.error)
    }
    throw new MalformedFrameError(`unexpected frame kind ${frame.kind} ending ${method}`)
  }

  /** Maps a failure to a typed error and drops the stream (its state is unknown). */
  #fail (framed: FramedStream | undefined, err: unknown, signal: AbortSignal, method: string): Error {
    if (framed != null && !this.#idle.some((e) => e.framed === framed)) framed.stream.abort(err instanceof Error ? err : new Error(String(err)))
    if (err instanceof DfsError && err.name !== 'Aborted') return err
    if (signal.aborted) {
      const reason = signal.reason as Error | undefined
      if (reason instanceof DfsError) return reason
      if (reason?.name === 'TimeoutError') {
        const d = deadlines.get(signal)
        return new DeadlineExceededError(`${d?.what ?? method} did not finish within ${d?.timeoutMs ?? '?'} ms`, { timeoutMs: d?.timeoutMs })
      }
      return new AbortedError(`${method} was aborted`)
    }
    if (err instanceof DfsError) return err
    const e = err as Error | null | undefined
    log('%s failed: %s', method, e?.message)
    return new NodeUnreachableError(`the node closed the connection during ${method} (${e?.message ?? String(e)}); ` +
      'if it keeps happening, this identity may not be allowed on the node', { method })
  }

  /**
   * A call's first write, on `framed` from #take. A pooled stream can be closed between #take's
   * check and this write — its connection closed under it (a node's libp2p connection monitor
   * closes a connection whose peer did not answer its ping in time, or the node restarted) and the
   * close processed meanwhile: the write then throws StreamStateError before any byte of the call
   * left, so nothing can have run, and the call moves to a new stream (a new connection if need
   * be), once. Resolves with the stream the call is on.
   */
  async #firstWrite (framed: FramedStream, signal: AbortSignal, write: (f: FramedStream) => Promise<void>): Promise<FramedStream> {
    try {
      await write(framed)
      return framed
    } catch (err) {
      if (!this.#pooled.has(framed) || (err as Error)?.name !== 'StreamStateError' || signal.aborted) throw err
      log('a pooled stream was closed before the call\'s first write (%s): the call goes on a new stream', (err as Error).message)
      framed.stream.abort(err as Error)
      const fresh = await this.#take(signal, { fresh: true })
      await write(fresh)
      return fresh
    }
  }

  async #take (signal?: AbortSignal, options: { fresh?: boolean } = {}): Promise<FramedStream> {
    const now = performance.now()
    while (options.fresh !== true && this.#idle.length > 0) {
      const { framed, since } = this.#idle.pop() as { framed: FramedStream, since: number }
      if (framed.reusable() && now - since <= this.#reuseIdleMs) {
        this.#pooled.add(framed)
        return framed
      }
      void framed.stream.close().catch(() => {})
    }
    const dialSignal = withDeadline(signal, this.#dialTimeoutMs, 'dial')
    try {
      const stream = await this.#host.dialProtocol(this.#target, RPC_PROTOCOL, { signal: dialSignal, negotiateFully: false })
      const conn = this.#host.getConnections().find((c) => c.streams.includes(stream))
      if (conn != null) this.#remotePeer = conn.remotePeer
      return new FramedStream(stream)
    } catch (err) {
      if (dialSignal.aborted && signal?.aborted !== true) {
        throw new NodeUnreachableError(`could not connect to ${String(this.#target)} within ${this.#dialTimeoutMs} ms`, { target: String(this.#target) })
      }
      if (signal?.aborted === true) throw err
      const detail = String((err as Error)?.message ?? err)
      const closed = /EOF|closed|reset|aborted/i.test(detail) || (err as Error)?.name === 'StreamResetError'
      throw new NodeUnreachableError(closed
        ? `${String(this.#target)} closed the connection during the handshake; this identity may not be allowed on that node (${detail})`
        : `could not connect to ${String(this.#target)}: ${detail}`, { target: String(this.#target) })
    }
  }

  #give (framed: FramedStream): void {
    if (framed.reusable() && this.#idle.length < RPC_IDLE_STREAMS_MAX) this.#idle.push({ framed, since: performance.now() })
    else void framed.stream.close().catch(() => {})
  }

  /**
   * Closes the idle streams; one whose close has not finished within STREAM_CLOSE_TIMEOUT_MS (a
   * write that never drains) is aborted, so closing a client never hangs a CLI command that is done.
   */
  async close (): Promise<void> {
    const idle = this.#idle.splice(0)
    await Promise.all(idle.map(async ({ framed }) => {
      await framed.stream.close({ signal: AbortSignal.timeout(STREAM_CLOSE_TIMEOUT_MS) }).catch((err: Error) => { framed.stream.abort(err) })
    }))
  }
}

async function readFrame (framed: FramedStream, signal: AbortSignal, method: string): Promise<Frame> {
  const frame = await framed.read({ signal })
  if (frame == null) {
    throw new NodeUnreachableError(`the node closed the stream during ${method}; if it keeps happening, this identity may not be allowed on the node`, { method })
  }
  return frame
}

/**
 * A streaming call's signal: the caller's, or no progress for `timeoutMs` (an idle deadline);
 * `idleMs` as the call header tells it to the server.
 */
function streamSignal (options: CallOptions, method: string): { idle: IdleTimer, idleMs: number, signal: AbortSignal } {
  const timeoutMs = options.timeoutMs ?? STREAM_IDLE_TIMEOUT_MS_DEFAULT
  const idle = new IdleTimer(timeoutMs, method, options.signal)
  return { idle, idleMs: Math.min(CALL_TIMEOUT_MS_MAX, Math.max(1, Math.ceil(timeoutMs))), signal: idle.signal }
}

function withDeadline (signal: AbortSignal | undefined, timeoutMs: number, what: string): AbortSignal {
  const deadline = AbortSignal.timeout(timeoutMs)
  const combined = signal == null ? deadline : AbortSignal.any([signal, deadline])
  // one listener per pending read or write of the call; they are removed as each settles
  setMaxListeners(Infinity, combined)
  deadlines.set(combined, { what, timeoutMs })
  return combined
}

/** What a deadline signal was for, so its TimeoutError becomes a DeadlineExceeded that says so. */
const deadlines = new WeakMap<AbortSignal, { what: string, timeoutMs: number }>()
