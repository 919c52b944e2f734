/**
 * The single-node commit path of the metadata: a durable, append-only log of operations in LevelDB,
 * applied in order to a MetadataStateMachine. It is what Raft will replace; the state machine does not
 * know which of the two commits its operations.
 *
 * - propose: the operation is CBOR-encoded, queued, written with the other queued operations in one
 *   fsync'd batch (group commit), then applied, in index order. An operation that apply rejects still
 *   consumes its index (the log holds it, a replay rejects it again), exactly as a committed Raft entry.
 *   The operation that is applied is the one decoded from the logged bytes, so a live apply and a
 *   replay see the same input.
 * - read: runs immediately against the applied state, which includes every operation whose proposal
 *   has resolved (an operation is applied in the same tick as its batch becomes durable).
 * - start: restores the latest snapshot and replays the log after it.
 * - compaction: every `compactEvery` applied operations, one fsync'd batch writes the snapshot and
 *   deletes the log up to it.
 * - a log write that fails leaves the service failed (the batch may or may not be on disk): every
 *   later call fails with Unavailable until a restart replays the log.
 */
import { mkdir } from 'node:fs/promises'
import { Level } from 'level'
import {
  AbortedError, DataDirLockedError, InvalidArgumentError, UnavailableError, errorFromWire
} from '@dfs/api'
import type {
  CallOptions, Logger, MetadataOp, MetadataResult, MetadataService, MetadataServiceInit, MetadataStatus,
  MetadataView, PeerIdString
} from '@dfs/api'
import { decodeOp, encodeOp } from '../codec.js'
import { MetadataStateMachine } from '../state-machine/index.js'
import {
  BATCH_BYTES_MAX_DEFAULT, BATCH_OPS_MAX_DEFAULT, COMPACT_EVERY_DEFAULT, OP_BYTES_MAX_DEFAULT, QUEUE_MAX_DEFAULT
} from './constants.js'
import { LOG_END, SNAPSHOT_KEY, logKey, parseLogKey } from './keys.js'

export interface LocalMetadataServiceInit extends MetadataServiceInit {
  /** Snapshot and compact the log every this many applied operations (default 10,000). */
  compactEvery?: number
  /** Most operations per fsync'd batch (default 1024). */
  batchOpsMax?: number
  /** Most encoded bytes per batch (default 4 MiB; one larger operation still goes alone). */
  batchBytesMax?: number
  /** Most proposals waiting for a batch (default 8192); beyond it propose fails with Unavailable. */
  queueMax?: number
  /** Largest encoded operation (default 16 MiB); larger ones fail with InvalidArgument. */
  opBytesMax?: number
}

/** Counters, for status pages, benchmarks and tests. */
export interface LocalMetadataStats {
  /** fsync'd batches of log entries written. */
  batches: number
  /** Operations written to the log. */
  ops: number
  /** Largest number of operations in one batch. */
  batchOpsLargest: number
  /** Snapshots written (each with its log deletion, in one batch). */
  compactions: number
}

type ServiceState = 'new' | 'starting' | 'running' | 'stopping' | 'stopped' | 'failed'
type OkResult = MetadataResult & { ok: true }
type Db = Level<Uint8Array, Uint8Array>

interface Pending {
  bytes: Uint8Array
  /** The operation as decoded from `bytes`: exactly what a replay of the log will apply. */
  op: MetadataOp
  resolve: (result: OkResult) => void
  reject: (err: Error) => void
  signal?: AbortSignal
  onAbort?: () => void
  /** Aborted or failed before being taken into a batch: skip it. */
  settled: boolean
}

function positiveInteger (value: number | undefined, fallback: number, what: string): number {
  if (value === undefined) {
    return fallback
  }
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new InvalidArgumentError(`${what} must be a positive integer`, { [what]: value })
  }
  return value
}

const noop = (): void => {}
const silentLogger: Logger = Object.assign(noop, { error: noop, trace: noop, enabled: false })

function nextTurn (): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve))
}

export class LocalMetadataService implements MetadataService {
  readonly #dir: string
  readonly #nodeId: PeerIdString
  readonly #log: Logger
  readonly #compactEvery: number
  readonly #batchOpsMax: number
  readonly #batchBytesMax: number
  readonly #queueMax: number
  readonly #opBytesMax: number

  #state: ServiceState = 'new'
  #starting: Promise<void> | undefined
  #db: Db | undefined
  #sm = new MetadataStateMachine()
  /** Index of the last log entry durably written (= commit index). Always ≥ the applied index. */
  #lastIndex = 0
  /** Applied index of the snapshot on disk (0: none); the log holds every entry after it. */
  #snapshotIndex = 0
  /** Applied index at which the next compaction is due. */
  #compactAt = 0
  /** Proposals waiting for a batch, in arrival order (which becomes index order). */
  #queue: Pending[] = []
  /** The running write loop, if any. At most one runs at a time. */
  #writing: Promise<void> | undefined
  #failure: Error | undefined

  readonly stats: LocalMetadataStats = { batches: 0, ops: 0, batchOpsLargest: 0, compactions: 0 }

  constructor (init: LocalMetadataServiceInit) {
    if (typeof init?.dir !== 'string' || init.dir.length === 0) {
      throw new InvalidArgumentError('init.dir must be a directory path', { dir: init?.dir })
    }
    if (typeof init.nodeId !== 'string' || init.nodeId.length === 0) {
      throw new InvalidArgumentError('init.nodeId must be a PeerId string', { nodeId: init.nodeId })
    }
    this.#dir = init.dir
    this.#nodeId = init.nodeId
    this.#log = init.logger ?? silentLogger
    this.#compactEvery = positiveInteger(init.compactEvery, COMPACT_EVERY_DEFAULT, 'compactEvery')
    this.#batchOpsMax = positiveInteger(init.batchOpsMax, BATCH_OPS_MAX_DEFAULT, 'batchOpsMax')
    this.#batchBytesMax = positiveInteger(init.batchBytesMax, BATCH_BYTES_MAX_DEFAULT, 'batchBytesMax')
    this.#queueMax = positiveInteger(init.queueMax, QUEUE_MAX_DEFAULT, 'queueMax')
    this.#opBytesMax = positiveInteger(init.opBytesMax, OP_BYTES_MAX_DEFAULT, 'opBytesMax')
  }

  /** The underlying database, for diagnostics and crash tests (closing it simulates a crash). */
  get db (): Db | undefined {
    return this.#db
  }

  // ---------------------------------------------------------------------------------------------
  // lifecycle

  async start (options?: CallOptions): Promise<void> {
    if (this.#state === 'running') {
      return
    }
    if (this.#state === 'starting' && this.#starting !== undefined) {
      return await this.#starting
    }
    if (this.#state !== 'new') {
      throw new UnavailableError(`the metadata service is ${this.#state} and cannot be started again`, { state: this.#state })
    }
    if (options?.signal?.aborted === true) {
      throw new AbortedError()
    }
    this.#state = 'starting'
    this.#starting = this.#open(options)
    try {
      await this.#starting
      this.#state = 'running'
    } catch (err) {
      const db = this.#db
      this.#db = undefined
      this.#sm = new MetadataStateMachine()
      this.#lastIndex = 0
      this.#snapshotIndex = 0
      this.#state = 'new'
      await db?.close().catch(() => {})
      throw err
    } finally {
      this.#starting = undefined
    }
  }

  async #open (options?: CallOptions): Promise<void> {
    await mkdir(this.#dir, { recursive: true })
    const db: Db = new Level<Uint8Array, Uint8Array>(this.#dir, { keyEncoding: 'view', valueEncoding: 'view' })
    this.#db = db
    try {
      await db.open()
    } catch (err) {
      const cause = (err as { cause?: { code?: string } }).cause
      if (cause?.code === 'LEVEL_LOCKED') {
        throw new DataDirLockedError(`the metadata directory ${this.#dir} is in use by another process`, { dir: this.#dir })
      }
      throw err
    }
    const started = Date.now()
    const snapshot = await db.get(SNAPSHOT_KEY)
    const sm = snapshot === undefined ? new MetadataStateMachine() : MetadataStateMachine.restore(snapshot)
    const snapshotIndex = sm.appliedIndex()
    let expected = snapshotIndex + 1
    let rejected = 0
    for await (const [key, value] of db.iterator({ gt: logKey(snapshotIndex), lt: LOG_END })) {
      if (options?.signal?.aborted === true) {
        throw new AbortedError('start was aborted while replaying the metadata log')
      }
      const index = parseLogKey(key)
      if (index !== expected) {
        throw new Error(`metadata log in ${this.#dir} is corrupt: expected entry ${expected}, found key ${Buffer.from(key).toString('hex')}`)
      }
      const result = sm.apply(decodeOp(value), index)
      if (!result.ok) {
        rejected++
      }
      expected++
    }
    this.#sm = sm
    this.#snapshotIndex = snapshotIndex
    this.#lastIndex = sm.appliedIndex()
    this.#compactAt = snapshotIndex + this.#compactEvery
    this.#log('metadata started in %s: snapshot at %d, replayed %d entries (%d rejected) in %d ms',
      this.#dir, snapshotIndex, this.#lastIndex - snapshotIndex, rejected, Date.now() - started)
  }

  async stop (): Promise<void> {
    if (this.#state === 'starting') {
      await this.#starting?.catch(() => {})
    }
    if (this.#state === 'stopped' || this.#state === 'stopping') {
      await this.#writing
      return
    }
    const wasFailed = this.#state === 'failed'
    this.#state = 'stopping'
    // Proposals already queued were accepted: the write loop finishes them before we close.
    await this.#writing
    const db = this.#db
    this.#db = undefined
    this.#state = 'stopped'
    if (db !== undefined && db.status === 'open') {
      await db.close()
    }
    this.#log('metadata stopped at index %d%s', this.#sm.appliedIndex(), wasFailed ? ' (after a failure)' : '')
  }

  status (): MetadataStatus {
    return {
      leader: this.#nodeId,
      term: 1,
      commitIndex: this.#lastIndex,
      appliedIndex: this.#sm.appliedIndex()
    }
  }

  // ---------------------------------------------------------------------------------------------
  // propose and read

  async propose (op: MetadataOp, options?: CallOptions): Promise<OkResult> {
    this.#requireRunning()
    const signal = options?.signal
    if (signal?.aborted === true) {
      throw new AbortedError('the proposal was aborted before it was queued')
    }
    if (op?.type === 'PutFile' && op.inline !== undefined) {
      // nothing here hands inline bytes to a store (no inlineVoters): they would live only in the log
      throw new InvalidArgumentError('this metadata service does not carry inline extent bytes', { path: op.path })
    }
    const bytes = encodeOp(op)
    if (bytes.byteLength > this.#opBytesMax) {
      throw new InvalidArgumentError(`the operation is ${bytes.byteLength} bytes, more than ${this.#opBytesMax}`,
        { bytes: bytes.byteLength, opBytesMax: this.#opBytesMax })
    }
    // Only bytes that decode again may enter the log: an entry that cannot be decoded would make the
    // log unreplayable. The decoded value (not the caller's object) is what gets applied.
    let decoded: MetadataOp
    try {
      decoded = decodeOp(bytes)
    } catch (err) {
      throw new InvalidArgumentError(`the operation cannot be logged: ${(err as Error).message}`)
    }
    if (this.#queue.length >= this.#queueMax) {
      throw new UnavailableError('too many metadata proposals are waiting', { queued: this.#queue.length, queueMax: this.#queueMax })
    }
    return await new Promise<OkResult>((resolve, reject) => {
      const pending: Pending = { bytes, op: decoded, resolve, reject, signal, settled: false }
      if (signal !== undefined) {
        pending.onAbort = () => {
          if (!pending.settled) {
            pending.settled = true
            reject(new AbortedError('the proposal was aborted before it was written'))
          }
        }
        signal.addEventListener('abort', pending.onAbort, { once: true })
      }
      this.#queue.push(pending)
      if (this.#writing === undefined) {
        this.#writing = this.#writeLoop()
      }
    })
  }

  /** The applied state (on one node it is also the committed one). */
  staleRead<T> (fn: (view: MetadataView) => T): T {
    this.#requireRunning()
    return fn(this.#sm.view)
  }

  async read<T> (fn: (view: MetadataView) => T, options?: CallOptions): Promise<T> {
    this.#requireRunning()
    if (options?.signal?.aborted === true) {
      throw new AbortedError()
    }
    return fn(this.#sm.view)
  }

  #requireRunning (): void {
    if (this.#state !== 'running') {
      throw new UnavailableError(this.#state === 'failed'
        ? `the metadata service failed (${this.#failure?.message ?? 'unknown error'}); restart the node`
        : `the metadata service is ${this.#state}`, { state: this.#state })
    }
  }

  // ---------------------------------------------------------------------------------------------
  // the write loop (group commit)

  /** Writes queued proposals, batch by batch, until the queue is empty. Only one loop runs at a time. */
  async #writeLoop (): Promise<void> {
    try {
      for (;;) {
        // Let every proposer that is ready enqueue first: they all join this batch.
        await nextTurn()
        if (this.#state === 'failed') {
          return
        }
        const batch = this.#takeBatch()
        if (batch.length === 0) {
          return
        }
        await this.#commit(batch)
        if (this.#sm.appliedIndex() >= this.#compactAt) {
          await this.#compact()
        }
      }
    } catch (err) {
      this.#fail(err as Error)
    } finally {
      this.#writing = undefined
    }
  }

  /** Takes up to batchOpsMax / batchBytesMax live proposals off the queue; from here they cannot be aborted. */
  #takeBatch (): Pending[] {
    const batch: Pending[] = []
    let bytes = 0
    let taken = 0
    for (; taken < this.#queue.length && batch.length < this.#batchOpsMax; taken++) {
      const p = this.#queue[taken]
      if (p.settled) {
        continue
      }
      if (batch.length > 0 && bytes + p.bytes.byteLength > this.#batchBytesMax) {
        break
      }
      batch.push(p)
      bytes += p.bytes.byteLength
    }
    this.#queue.splice(0, taken)
    for (const p of batch) {
      p.settled = true
      if (p.onAbort !== undefined) {
        p.signal?.removeEventListener('abort', p.onAbort)
      }
    }
    return batch
  }

  async #commit (batch: Pending[]): Promise<void> {
    const db = this.#db
    if (db === undefined) {
      throw new Error('the metadata database is not open')
    }
    const first = this.#lastIndex + 1
    const writes = batch.map((p, i) => ({ type: 'put' as const, key: logKey(first + i), value: p.bytes }))
    try {
      await db.batch(writes, { sync: true })
    } catch (err) {
      const failure = new UnavailableError('writing the metadata log failed; the operation may or may not be committed',
        { firstIndex: first, ops: batch.length, cause: (err as Error).message })
      for (const p of batch) {
        p.reject(failure)
      }
      throw err
    }
    this.#lastIndex = first + batch.length - 1
    this.stats.batches++
    this.stats.ops += batch.length
    this.stats.batchOpsLargest = Math.max(this.stats.batchOpsLargest, batch.length)
    if (this.#log.enabled) {
      this.#log.trace('wrote entries %d..%d', first, this.#lastIndex)
    }
    // Apply in index order, in this same tick: a read never sees a committed but unapplied entry.
    let i = 0
    try {
      for (; i < batch.length; i++) {
        const p = batch[i]
        const result = this.#sm.apply(p.op, first + i)
        if (result.ok) {
          p.resolve(result)
        } else {
          p.reject(errorFromWire({ ...result.error, details: { ...result.error.details, index: result.index } }))
        }
      }
    } catch (err) {
      // A broken state-machine invariant: nothing more can be applied safely.
      for (; i < batch.length; i++) {
        batch[i].reject(err as Error)
      }
      throw err
    }
  }

  async #compact (): Promise<void> {
    const db = this.#db
    if (db === undefined) {
      return
    }
    const upTo = this.#sm.appliedIndex()
    const started = Date.now()
    const snapshot = this.#sm.snapshot()
    const writes: Array<{ type: 'put', key: Uint8Array, value: Uint8Array } | { type: 'del', key: Uint8Array }> = [
      { type: 'put', key: SNAPSHOT_KEY, value: snapshot }
    ]
    for (let i = this.#snapshotIndex + 1; i <= upTo; i++) {
      writes.push({ type: 'del', key: logKey(i) })
    }
    try {
      await db.batch(writes, { sync: true })
    } catch (err) {
      // The batch is atomic: the log is intact. Try again after another compactEvery operations.
      this.#compactAt = upTo + this.#compactEvery
      this.#log.error('metadata compaction at %d failed: %s', upTo, (err as Error).message)
      return
    }
    this.#log('metadata snapshot at %d (%d bytes), dropped log %d..%d in %d ms',
      upTo, snapshot.byteLength, this.#snapshotIndex + 1, upTo, Date.now() - started)
    this.#snapshotIndex = upTo
    this.#compactAt = upTo + this.#compactEvery
    this.stats.compactions++
  }

  /** After a failed log write the service stops accepting work; a restart replays the log. */
  #fail (err: Error): void {
    if (this.#state !== 'stopping' && this.#state !== 'stopped') {
      this.#state = 'failed'
    }
    this.#failure = err
    this.#log.error('metadata log failed: %s', err.message)
    const queued = this.#queue
    this.#queue = []
    const failure = new UnavailableError('the metadata log failed; restart the node', { cause: err.message })
    for (const p of queued) {
      if (!p.settled) {
        p.settled = true
        if (p.onAbort !== undefined) {
          p.signal?.removeEventListener('abort', p.onAbort)
        }
        p.reject(failure)
      }
    }
  }
}
