import { createHash, randomUUID } from 'node:crypto'
import { setMaxListeners } from 'node:events'
import {
  AlreadyExistsError, BadDigestError, COMPOSE_PARTS_MAX, RENAME_FILES_MAX, Deadline, DeadlineExceededError, DfsError, EXTENT_SIZE_MAX, FailedPreconditionError, INLINE_FILE_BYTES_MAX, InvalidArgumentError,
  InvalidRangeError, IsADirectoryError, MalformedFrameError, NotADirectoryError, NotFoundError,
  QuotaExceededError, STAGE_BATCH_MAX, STAT_EXTENTS_MAX, extentChecksum, fromInternalPath, isTenantRootName, normalizePath, parentPath, requireComposeWithinTopLevel, requireFileMeta,
  decodeExtent, readPieces, requireNotRoot, throwIfAborted, type EncodedExtent, type Piece,
  type CallOptions, type ComposeResult, type CopyResult, type Consistency, type DirEntry, type DirResult, type ListDirPage, type ExtentPeers, type ExtentRecord, type ExtentStore,
  type FileMeta, type FileMetaFields, type FileRecord, type MetadataOp,
  type ListResult, type MetadataService, type MetadataView, type PutResult, type RemoveResult, type RenameResult, type ReplicationService, type StatResult,
  type PeerIdString, type WriteSync
} from '@dfs/api'
import { logger } from '@libp2p/logger'
import type { ExtentGc } from './extent-gc.js'
import type { ExtentReader } from './extents.js'
import type { InlineExtents } from './inline-extents.js'
import { transferFile, type TransferPoint } from './transfers.js'

const log = logger('dfs:node:files')

/**
 * Extents a read through the extent reader fetches ahead of the one it sends: with one, 256 MiB gets
 * (RF 3, 4 MiB extents) ran at ~180 MiB/s here, with two at ~205–215 (alternating runs), as the
 * node's reads and checksum checks overlap its sending more. Cost: up to two more extents (8 MiB)
 * held per read stream.
 */
const READ_AHEAD_EXTENTS = 2

/** Extent writes a put keeps in flight while it receives the next extent's bytes. */
const PUT_EXTENTS_IN_FLIGHT_MAX = 4
/** Decode buffers a node keeps for puts of compressed pieces (see FileService's #decodeBuffers): at most 24 MiB. */
const DECODE_BUFFERS_KEPT = PUT_EXTENTS_IN_FLIGHT_MAX + 2

/** Largest page of `ls`. */
export const LIST_PAGE_MAX = 1000
/**
 * Bytes of names and paths one page of `ls` may carry (counted as UTF-16, twice their length:
 * at least their UTF-8 size), so a page of long names stays well inside an RPC frame
 * (FRAME_BYTES_MAX): it is cut short, with `more`.
 */
export const LIST_PAGE_BYTES_MAX = 256 * 1024
/** What an entry costs beyond its path and name (type, size, mtime, version, etag, CBOR keys). */
const LIST_ENTRY_BYTES_OVERHEAD = 128

export interface FileServiceInit {
  nodeId: string
  store: ExtentStore
  metadata: MetadataService
  gc: ExtentGc
  /** Bytes per extent (the last one of a file may be shorter). */
  extentSize?: number
  /** Longest a put may take (PUT_DURATION_MAX_MS). */
  putDurationMaxMs?: number
  /**
   * Where `open` reads extents from (e.g. RemoteExtents: the local copy, else another replica). Without
   * it every extent is read from `store`, which must then hold them all.
   */
  extents?: ExtentReader
  /**
   * Where extents are written, read and released when they have copies on several nodes. Without
   * it every extent has one copy, in `store`.
   */
  replication?: ReplicationService
  /**
   * With `replication`: a small file's bytes may travel inside its commit (see #inlinePlacement);
   * this stores this node's copy meanwhile. Without it every extent is written before the commit.
   */
  inline?: InlineExtents
  /**
   * With `replication`: deletes other nodes' copies of a put that certainly did not commit (refused
   * by metadata, e.g. QuotaExceeded, or failed before its commit) at once, since no reader can hold
   * them. Without it they go through `replication.release` (after its grace).
   */
  peers?: Pick<ExtentPeers, 'delete'>
  /** Test fault hook: called at each point of a rename across metadata groups (see transferFile). */
  reached?: (point: TransferPoint) => void
}

/**
 * How long a put that did not commit waits for other nodes to delete its copies before it answers:
 * this, plus ABANDONED_DELETE_MS_PER_COPY for each copy, at most ABANDONED_DELETE_TIMEOUT_MS_MAX.
 */
const ABANDONED_DELETE_TIMEOUT_MS = 5_000
const ABANDONED_DELETE_MS_PER_COPY = 2
const ABANDONED_DELETE_TIMEOUT_MS_MAX = 120_000
/**
 * Deletes of other nodes' copies an abandoned put keeps in flight at once: well under the streams a
 * peer takes on one connection (RPC_INBOUND_STREAMS_MAX), which other calls share.
 */
const ABANDONED_DELETES_IN_FLIGHT_MAX = 16
/** How long a put that failed after staging waits for its DropStage (its own signal may be aborted). */
const DROP_STAGE_TIMEOUT_MS = 30_000

/** Options of a put. */
export interface PutFileOptions extends CallOptions {
  sync?: WriteSync
  /**
   * The size the caller says the file has: a put under a tenant's root that would take the tenant
   * past its byte quota is refused before any byte is received. The commit checks the real size.
   */
  declaredSize?: number
  /** Kept with the file (checked by requireFileMeta before any byte is received); an `md5` etag replaces `meta.etag`. */
  meta?: FileMeta
  /**
   * `true`: the MD5 of the bytes is computed as they arrive and its hex kept as the file's etag. A
   * string: also the MD5 (base64, 16 bytes) the bytes must have; any other fails the put with
   * BadDigest before its commit, and its extents are abandoned as any failed put's.
   */
  md5?: true | string
  /**
   * The body is a sequence of pieces (extent-pieces.ts), each one extent's bytes as the client sent
   * them, raw or compressed: each becomes one extent (pieces larger than this node's extents are cut
   * as a raw body is). A compressed piece is decoded here — which proves it, and gives the bytes to
   * hash — and its encoded bytes are what its copies store and receive (see ReplicatedWriteOptions.encoded).
   */
  pieces?: boolean
}

/** A base64 MD5 digest (16 bytes), as HTTP's Content-MD5 carries it. */
const MD5_BASE64 = /^[A-Za-z0-9+/]{21}[AQgw]==$/

/** Options of a listing page. */
export interface ListPage {
  after?: string
  limit?: number
  /** Leave tenants' roots out of a listing of `/` (the default namespace's view). */
  hideTenantRoots?: boolean
}

/**
 * Longest a put may take, from its first byte to its commit: 6 hours (a 100 GiB file at 5 MiB/s).
 * Its copies on other nodes are unreferenced until the commit; the periodic orphan sweep frees
 * copies only after a longer time (ORPHAN_AGE_MS_DEFAULT), so it never frees those of a live put.
 */
export const PUT_DURATION_MAX_MS = 6 * 3600_000

/** The first extent buffer of a put (it doubles up to the extent size as bytes arrive). */
const PUT_BUFFER_START_BYTES = 64 * 1024

/** Options of stat, open and list. */
export interface ReadFileOptions extends CallOptions {
  /** How current the metadata read must be (default linearizable; see Consistency). */
  consistency?: Consistency
}

/** Options of stat: which page of the file's extents to answer with (see StatResult). */
export interface StatFileOptions extends ReadFileOptions {
  /** Index of the page's first extent (default 0); past the file's number of extents is InvalidArgument. */
  extentsFrom?: number
  /** The version the page must be of: FailedPrecondition when the file is at another. */
  version?: number
}

/** Options of open: which bytes of the file to read. */
export interface OpenFileOptions extends ReadFileOptions {
  /** First byte to read (default 0); past the end of the file is InvalidRange. */
  offset?: number
  /** Most bytes to read from `offset` (default: to the end); clipped at the end of the file. */
  length?: number
}

export interface OpenFile {
  /** The whole file's metadata (every extent, also those outside the range: not bounded by STAT_EXTENTS_MAX). */
  stat: StatResult
  /** The part of the file `body` carries, and the extents it reads for it. */
  range: ExtentRange
  /**
   * The bytes of `range`, extent by extent, each extent verified whole against its checksum (by the
   * store, and with an ExtentReader also against metadata's record) before the range trims it. The
   * extents' local bytes stay pinned until the body ends, fails or is left (a generator that was never
   * started does not run its cleanup, so a caller that decides not to read must still start it).
   */
  body: AsyncGenerator<Uint8Array>
}

/**
 * The bytes [offset, offset + length) of a file, in terms of its extents: the extents
 * [first, end) are those that overlap it, and only they are read. Invariants: `length` is the sum
 * of the extents' bytes between `headSkip` and `tailDrop`; an empty range reads no extent.
 */
export interface ExtentRange {
  /** First byte served. */
  offset: number
  /** Bytes served: what was asked, clipped at the end of the file. */
  length: number
  /** Index of the first extent read. */
  first: number
  /** Index after the last extent read (`first` when the range is empty). */
  end: number
  /** File offset at which extent `first` starts (`offset` when the range is empty). */
  firstOffset: number
  /** Bytes of extent `first` before `offset`: read and verified, not sent. */
  headSkip: number
  /** Bytes of extent `end - 1` after the range: read and verified, not sent. */
  tailDrop: number
}

/**
 * Which extents of a file (their sizes, in order) hold the bytes [offset, offset + length), and how
 * much of the first and last to cut. `length` absent: to the end. A range that starts at the end or
 * has length 0 is empty; one that runs past the end is clipped; one that starts past the end is
 * InvalidRange. Negative or fractional numbers are InvalidArgument.
 */
export function extentRange (sizes: readonly number[], offset = 0, length?: number): ExtentRange {
  if (!Number.isSafeInteger(offset) || offset < 0) throw new InvalidArgumentError('offset must be an integer >= 0', { offset })
  if (length !== undefined && (!Number.isSafeInteger(length) || length < 0)) throw new InvalidArgumentError('length must be an integer >= 0', { length })
  let size = 0
  for (const n of sizes) size += n
  if (offset > size) throw new InvalidRangeError(`offset ${offset} is past the end of the file (${size} bytes)`, { offset, size })
  const stop = offset + Math.min(length ?? Infinity, size - offset)
  const empty: ExtentRange = { offset, length: 0, first: 0, end: 0, firstOffset: offset, headSkip: 0, tailDrop: 0 }
  if (stop === offset) return empty
  let first = -1
  let firstOffset = 0
  let end = 0
  let at = 0
  for (let i = 0; i < sizes.length && at < stop; i++) {
    const next = at + sizes[i]
    // overlaps [offset, stop): starts before its end and ends after its start
    if (next > offset) {
      if (first < 0) {
        first = i
        firstOffset = at
      }
      end = i + 1
    }
    at = next
  }
  // stop > offset and stop <= size, so some extent holds the byte at `offset`
  if (first < 0) throw new Error(`extent range invariant broken: no extent holds byte ${offset} of ${size}`)
  return { offset, length: stop - offset, first, end, firstOffset, headSkip: offset - firstOffset, tailDrop: at - stop }
}

/**
 * Files on top of extents and metadata: a put writes extents (each fsync'd) and then commits the
 * new file version in one metadata operation, so readers see the old or the new version, never a mix.
 * A file of more than STAGE_BATCH_MAX extents records them in batches under a stage as they become
 * durable (StageExtents) and its commit names the stage (PutFile { stage }): still one atomic step,
 * whatever the number of extents. A put that fails drops its stage (DropStage) and deletes its copies.
 */
export class FileService {
  readonly #nodeId: string
  readonly #store: ExtentStore
  readonly #metadata: MetadataService
  readonly #gc: ExtentGc
  readonly #extentSize: number
  readonly #putDurationMaxMs: number
  readonly #extents: ExtentReader | undefined
  readonly #replication: ReplicationService | undefined
  readonly #inline: InlineExtents | undefined
  readonly #peers: Pick<ExtentPeers, 'delete'> | undefined
  readonly #reached: ((point: TransferPoint) => void) | undefined
  /**
   * Buffers compressed pieces of puts are decoded into, each back here once its extent's write
   * settled (when the replication service promises not to read them after: encodedWritesReleaseBytes).
   * A new 4 MiB buffer per piece was external memory V8 collected with major GCs: ~a fifth of the
   * receiving node's CPU on a log-text put.
   */
  readonly #decodeBuffers: Uint8Array[] = []

  constructor (init: FileServiceInit) {
    this.#nodeId = init.nodeId
    this.#store = init.store
    this.#metadata = init.metadata
    this.#gc = init.gc
    this.#extentSize = init.extentSize ?? EXTENT_SIZE_MAX
    this.#putDurationMaxMs = init.putDurationMaxMs ?? PUT_DURATION_MAX_MS
    this.#replication = init.replication
    this.#inline = init.inline
    this.#peers = init.peers
    this.#reached = init.reached
    this.#extents = init.replication != null ? { get: async (e, o) => await (init.replication as ReplicationService).read(e, o) } : init.extents
    if (!(this.#extentSize > 0 && this.#extentSize <= EXTENT_SIZE_MAX)) throw new Error(`extent size ${this.#extentSize} out of range`)
  }

  async put (rawPath: string, body: AsyncIterable<Uint8Array>, callOptions: PutFileOptions = {}): Promise<PutResult> {
    const path = normalizePath(rawPath)
    requireFileMeta(callOptions.meta)
    const md5 = callOptions.md5
    if (md5 !== undefined && md5 !== true && (typeof md5 !== 'string' || !MD5_BASE64.test(md5))) {
      throw new InvalidArgumentError('md5 must be true or the base64 MD5 of the bytes (16 bytes)', { field: 'md5' })
    }
    // a put has a time limit: until it commits, its copies on other nodes are referenced by nothing,
    // and their periodic sweep must be able to tell a slow put from an abandoned one
    const limit = new Deadline(this.#putDurationMaxMs, callOptions.signal)
    const tooLong = (): DeadlineExceededError =>
      new DeadlineExceededError(`a put may take at most ${this.#putDurationMaxMs} ms`, { path, timeoutMs: this.#putDurationMaxMs })
    try {
      return await this.#put(path, body, { ...callOptions, signal: limit.signal }, () => { if (limit.expired) throw tooLong() })
    } catch (err) {
      if (limit.expired && !(err instanceof DeadlineExceededError)) throw tooLong()
      throw err
    } finally {
      limit.clear()
    }
  }

  async #put (path: string, body: AsyncIterable<Uint8Array>, options: PutFileOptions, checkLimit: () => void): Promise<PutResult> {
    // refuse early what the commit would refuse, before receiving any bytes
    // (the commit checks again, so this node's possibly stale state is good enough to refuse early)
    const precheck = (view: MetadataView): number => {
      checkPutTarget(view, path)
      return tenantBytesLeft(view, path, options.declaredSize ?? 0)
    }
    // bytes the tenant may still add with this file (Infinity outside tenants and without a byte quota)
    const bytesLeft = this.#metadata.staleRead != null
      ? this.#metadata.staleRead(precheck)
      : await this.#metadata.read(precheck, { ...options, scope: { paths: [path] } })
    const written: ExtentRecord[] = []
    const unpins: Array<() => void> = []
    let proposed = false
    /**
     * A big file's stage (see STAGE_BATCH_MAX): `written[0, staged)` are certainly in it,
     * `written[staged, offered)` were proposed for it with an outcome not known (a failed proposal
     * whose rejection carries no index), `written[offered…)` never were.
     */
    let stage: { id: string, createdAtMs: number } | undefined
    let staged = 0
    let offered = 0
    const inFlight: Array<Promise<void>> = []
    /** This node's copy of a small file stored beside its commit (see #inlinePlacement). */
    let local: Promise<unknown> | undefined
    let size = 0
    // every byte handed on is written first (only buffer[0, filled) leaves), so no zero-fill is needed;
    // allocated when bytes arrive, so an empty file (a pure metadata write) costs no extent buffer
    let buffer: Uint8Array | undefined
    let filled = 0
    const hash = options.md5 !== undefined ? createHash('md5') : undefined
    // the first extent's buffer starts small and doubles as bytes arrive: a small file costs a small
    // buffer, not a whole extent's (4 MiB of external memory per small put made V8 collect garbage
    // all the time); once an extent has filled, the file is big and later buffers start full size
    let big = false
    const room = (need: number): Uint8Array => {
      const cap = buffer?.byteLength ?? 0
      if (buffer !== undefined && cap >= need) return buffer
      let next = Math.max(cap * 2, big ? this.#extentSize : PUT_BUFFER_START_BYTES)
      while (next < need) next *= 2
      const grown = Buffer.allocUnsafeSlow(Math.min(next, this.#extentSize))
      if (buffer !== undefined && filled > 0) grown.set(buffer.subarray(0, filled))
      buffer = grown
      return grown
    }
    /** The client's encoding of the bytes in `buffer` (a piece: see PutFileOptions.pieces), if it sent them encoded. */
    let encoded: EncodedExtent | undefined
    /** The decode buffer `buffer` is a view of, if it is one (see #decodeBuffers). */
    let lent: Uint8Array | undefined
    const flush = async (): Promise<void> => {
      const bytes = (buffer as Uint8Array).subarray(0, filled)
      if (filled === this.#extentSize) big = true
      const sent = encoded
      const decodedInto = lent
      buffer = undefined
      filled = 0
      encoded = undefined
      lent = undefined
      const id = randomUUID()
      const record: ExtentRecord = { id, size: bytes.byteLength, checksum: '', replicas: [this.#nodeId] }
      written.push(record)
      // pinned from before its bytes exist until the file commits: a concurrent sweep leaves it alone
      unpins.push(this.#gc.pin([id]))
      const replication = this.#replication
      const stored = replication != null
        ? replication.write(id, bytes, sent !== undefined ? { ...options, encoded: sent } : options).then((w) => { record.checksum = w.extent.checksum; record.replicas = w.extent.replicas })
        : this.#store.put(id, bytes, options).then((info) => { record.checksum = info.checksum })
      // handled here so a failure while the next extent is still arriving is not an unhandled
      // rejection; it is rethrown when this write is awaited
      stored.catch(() => {})
      if (decodedInto !== undefined && sent !== undefined && replication?.encodedWritesReleaseBytes === true) {
        const release = (): void => { this.#releaseDecodeBuffer(decodedInto) }
        stored.then(release, release)
      }
      inFlight.push(stored)
      // a full batch and the first extent after it: more bytes come, so the batch goes to the stage
      if (written.length - staged > STAGE_BATCH_MAX) await stageBatch()
      if (inFlight.length >= PUT_EXTENTS_IN_FLIGHT_MAX) await inFlight.shift()
    }
    /**
     * Records the next STAGE_BATCH_MAX written extents in the put's stage, once their copies are
     * durable (every write before the newest one, which goes on meanwhile), so that the commit
     * carries at most one batch whatever the file's size.
     */
    const stageBatch = async (): Promise<void> => {
      await Promise.all(inFlight.slice(0, -1))
      const batch = written.slice(staged, staged + STAGE_BATCH_MAX)
      stage ??= { id: randomUUID(), createdAtMs: Date.now() }
      offered = staged + batch.length
      try {
        await this.#metadata.propose({ type: 'StageExtents', stage: stage.id, path, node: this.#nodeId, extents: batch, createdAtMs: stage.createdAtMs }, options)
      } catch (err) {
        // refused (the rejection carries its log index): the batch is certainly not staged
        if (err instanceof DfsError && typeof err.details.index === 'number') offered = staged
        throw err
      }
      staged = offered
    }
    /** Takes the logical bytes of `chunk`, cutting extents as they fill. */
    const take = async (chunk: Uint8Array): Promise<void> => {
      hash?.update(chunk)
      let offset = 0
      while (offset < chunk.byteLength) {
        const n = Math.min(chunk.byteLength - offset, this.#extentSize - filled)
        room(filled + n).set(chunk.subarray(offset, offset + n), filled)
        filled += n
        offset += n
        size += n
        if (filled === this.#extentSize) await flush()
      }
      // past the quota as this node knows it: stop receiving (the commit would refuse it anyway)
      if (size > bytesLeft) throw quotaExceeded(path, size, bytesLeft)
    }
    try {
      if (options.pieces === true) {
        let index = 0
        for await (const piece of readPieces(body)) {
          checkLimit()
          // a piece is an extent of its own: the bytes before it are one already
          if (filled > 0) await flush()
          const into = piece.codec === 'zstd' ? this.#decodeBuffers.pop() ?? new Uint8Array(Buffer.allocUnsafeSlow(EXTENT_SIZE_MAX).buffer) : undefined
          const logical = piece.codec === undefined ? piece.bytes : decodePiece(path, index, piece, into)
          index++
          if (piece.size > this.#extentSize) {
            // copied into this node's extents as they fill: the decode buffer is free again
            await take(logical)
            if (into !== undefined) this.#releaseDecodeBuffer(into)
            continue
          }
          hash?.update(logical)
          buffer = logical
          filled = piece.size
          size += piece.size
          if (piece.codec !== undefined) encoded = { codec: piece.codec, bytes: piece.bytes }
          lent = into
          if (size > bytesLeft) throw quotaExceeded(path, size, bytesLeft)
        }
      } else {
        for await (const chunk of body) {
          checkLimit()
          await take(chunk)
        }
      }
      let etag: string | undefined
      if (hash !== undefined) {
        const digest = hash.digest()
        if (typeof options.md5 === 'string' && digest.toString('base64') !== options.md5) {
          throw new BadDigestError(`the bytes of ${path} do not have the MD5 given for them`,
            { path, expected: options.md5, actual: digest.toString('base64') })
        }
        etag = digest.toString('hex')
      }
      const meta = requireFileMeta(etag !== undefined ? { ...options.meta, etag } : options.meta)
      const inline = written.length === 0 && filled > 0 ? this.#inlinePlacement(path, filled, options) : undefined
      const op: MetadataOp & { type: 'PutFile' } = { type: 'PutFile', path, size, mtimeMs: Date.now(), extents: written, ...(meta !== undefined ? { meta } : {}) }
      if (inline !== undefined) {
        // a small file: its bytes travel in the commit, and every replica stores them as it applies it
        const bytes = (buffer as Uint8Array).subarray(0, filled)
        const record: ExtentRecord = { id: inline.id, size: filled, checksum: extentChecksum(bytes), replicas: inline.replicas }
        written.push(record)
        unpins.push(this.#gc.pin([record.id]))
        op.inline = [bytes]
        log('put %s: %d bytes inside the commit, extent %s on %o', path, filled, record.id, record.replicas)
        // this node's copy is stored while the commit runs, so it serves reads once the put returns
        const mine = inline.store.storeLocal(record, bytes, options)
        unpins.push(mine.release)
        local = mine.written
      } else if (filled > 0) {
        await flush()
      }
      await Promise.all(inFlight.splice(0))
      if (stage !== undefined) {
        // a staged put commits its stage and the extents after it (at most one batch): set once
        // the last extent was flushed, which may have staged a batch itself
        op.extents = written.slice(staged)
        op.stage = stage.id
      }
      proposed = true
      const result = await this.#metadata.propose(op, options)
      if (local !== undefined) {
        // committed: the other replicas store their copies as they apply it, and if this write
        // failed, this node's own apply stores the copy again (the sink sees the failure)
        await local.catch((err) => { log.error('local copy of inline extent %s of %s: %s', written[0].id, path, (err as Error).message) })
      }
      if (result.freed != null && result.freed.length > 0) await this.#free(result.freed)
      return { path, size, extents: written.length, ...(etag !== undefined ? { etag } : {}) }
    } catch (err) {
      await Promise.allSettled(local === undefined ? inFlight : [...inFlight, local])
      // Free the bytes only when the file certainly did not commit: the put failed before its
      // proposal, or apply rejected it (the rejection carries its log index). A deadline or a lost
      // leader leaves the outcome unknown — the file may still commit — so the bytes stay, and the
      // sweep frees them if it never does.
      const rejected = err instanceof DfsError && typeof err.details.index === 'number'
      let uncommitted = !proposed || rejected
      if (stage !== undefined) {
        // A dropped stage can no longer commit, so then nothing of this put can: a PutFile of
        // unknown outcome either committed before the drop (which then finds no stage) or is
        // refused after it (NotFound). Dropping is safe whatever happened.
        const freed = await this.#dropStage(path, stage.id, proposed)
        if (freed !== undefined) {
          uncommitted = true
          // A batch whose StageExtents has no known outcome (written[staged, offered)) and is not
          // among what the drop freed never reached the stage before it: the put threw there, so
          // no PutFile was proposed, and if that StageExtents is applied yet it makes a stage
          // nothing can commit, which the stale stage check drops. Its copies go with the rest;
          // left, nothing but the orphan sweep, hours later, would free them.
          const gone = new Set(freed.map((e) => e.id))
          await this.#abandon([...freed, ...written.slice(staged, offered).filter((e) => e.checksum !== '' && !gone.has(e.id))])
        }
      }
      // without a drop, a batch of unknown outcome is left to the stale stage check and the sweeps
      if (uncommitted) await this.#abandon(written.slice(offered).filter((e) => e.checksum !== ''))
      throw err
    } finally {
      // after a failure the extents were freed while pinned: letting go deletes them now
      for (const unpin of unpins) unpin()
    }
  }

  #releaseDecodeBuffer (buffer: Uint8Array): void {
    if (this.#decodeBuffers.length < DECODE_BUFFERS_KEPT) this.#decodeBuffers.push(buffer)
  }

  /** A file's metadata with one page of its extents (at most STAT_EXTENTS_MAX; see StatFileOptions). */
  async stat (rawPath: string, options: StatFileOptions = {}): Promise<StatResult> {
    const path = normalizePath(rawPath)
    const from = options.extentsFrom ?? 0
    if (!Number.isSafeInteger(from) || from < 0) throw new InvalidArgumentError('extentsFrom must be an integer >= 0', { extentsFrom: from })
    const version = options.version
    if (version !== undefined && (!Number.isSafeInteger(version) || version < 1)) throw new InvalidArgumentError('version must be an integer >= 1', { version })
    const { value, consistency } = await this.#read(path, (view) => statOf(view, path, { from, count: STAT_EXTENTS_MAX, version }), options)
    return { ...value, consistency }
  }

  /**
   * Opens a file, or the range [offset, offset + length) of it (see extentRange): its metadata is read
   * as `options.consistency` asks, its bytes from the replicas as always, and only the extents that
   * overlap the range are pinned and read.
   */
  async open (rawPath: string, options: OpenFileOptions = {}): Promise<OpenFile> {
    const path = normalizePath(rawPath)
    let release: () => void = () => {}
    const read = await this.#read(path, (view) => {
      const s = statOf(view, path)
      const range = extentRange(s.extents.map((e) => e.size), options.offset, options.length)
      // pinned in the same synchronous step that read the version: no rm can slip in between
      release = this.#gc.pin(s.extents.slice(range.first, range.end).map((e) => e.id))
      return { s, range }
    }, options)
    const stat: StatResult = { ...read.value.s, consistency: read.consistency }
    const r = read.value.range
    const wanted = stat.extents.slice(r.first, r.end)
    /**
     * The bytes of the range in `bytes`, the whole of extent `first + i` as read. Each extent was
     * verified whole, also the first and last when the range cuts them: a checksum covers the whole
     * extent, so a range read costs up to one extent more at each end than the bytes it sends.
     */
    const trim = (i: number, bytes: Uint8Array): Uint8Array => {
      const from = i === 0 ? r.headSkip : 0
      const to = bytes.byteLength - (i === wanted.length - 1 ? r.tailDrop : 0)
      return from === 0 && to === bytes.byteLength ? bytes : bytes.subarray(from, to)
    }
    const store = this.#store
    const reader = this.#extents
    async function * local (): AsyncGenerator<Uint8Array> {
      try {
        for (let i = 0; i < wanted.length; i++) yield trim(i, await store.get(wanted[i].id, { signal: options.signal }))
      } finally {
        release()
      }
    }
    /** Reads through `reader`, fetching the next READ_AHEAD_EXTENTS extents while the caller consumes this one. */
    async function * through (reader: ExtentReader): AsyncGenerator<Uint8Array> {
      const stop = new AbortController()
      const signal = options.signal == null ? stop.signal : AbortSignal.any([options.signal, stop.signal])
      const fetch = (i: number): Promise<Uint8Array> => {
        const p = reader.get(wanted[i], { signal })
        // rethrown when awaited; a prefetch the caller never reaches must not be an unhandled rejection
        p.catch(() => {})
        return p
      }
      const ahead: Array<Promise<Uint8Array>> = []
      let fetched = 0
      const fill = (): void => {
        while (ahead.length < READ_AHEAD_EXTENTS && fetched < wanted.length) ahead.push(fetch(fetched++))
      }
      try {
        fill()
        for (let i = 0; ahead.length > 0; i++) {
          const bytes = await (ahead.shift() as Promise<Uint8Array>)
          fill()
          yield trim(i, bytes)
        }
      } finally {
        stop.abort()
        await Promise.allSettled(ahead)
        release()
      }
    }
    return { stat, range: r, body: reader == null ? local() : through(reader) }
  }

  async list (rawPath: string, page: ListPage = {}, options: ReadFileOptions = {}): Promise<ListResult> {
    const path = normalizePath(rawPath)
    const limit = Math.min(page.limit ?? LIST_PAGE_MAX, LIST_PAGE_MAX)
    const { value, consistency } = await this.#read(path, (view) => {
      const file = view.getFile(path)
      if (file != null) {
        return { entries: [listed({ path, name: path.slice(path.lastIndexOf('/') + 1), type: 'file', size: file.size }, file)], more: false }
      }
      // one page, in O(page): limit + 1 entries tell whether more follow; tenants' roots hidden from
      // `/` are skipped page by page
      const entries: DirEntry[] = []
      let after = page.after
      let bytes = 0
      while (true) {
        const batch = listDir(view, path, { ...(after !== undefined ? { after } : {}), limit: limit + 1 })
        for (const e of batch) {
          if (page.hideTenantRoots === true && path === '/' && isTenantRootName(e.name)) continue
          // a page stays well inside one RPC frame whatever its names' lengths
          const size = LIST_ENTRY_BYTES_OVERHEAD + 2 * (e.path.length + e.name.length)
          if (entries.length === limit || (entries.length > 0 && bytes + size > LIST_PAGE_BYTES_MAX)) return { entries, more: true }
          bytes += size
          // only the page's files are looked up for their mtime, version and etag
          entries.push(e.type === 'file' ? listed(e, view.getFile(e.path)) : e)
        }
        if (batch.length <= limit) return { entries, more: false }
        after = batch[batch.length - 1].name
      }
    }, options)
    return { ...value, consistency }
  }

  /**
   * Runs `fn` on the metadata at `path` as `options.consistency` asks, and says which read it served:
   * linearizable (a ReadIndex round in the path's group: it needs a quorum), or, when the caller asked
   * for a stale one and the metadata service offers it, this node's applied state, which needs no
   * other node — a node cut off from a majority still answers it, possibly behind the cluster.
   */
  async #read<T> (path: string, fn: (view: MetadataView) => T, options: ReadFileOptions): Promise<{ value: T, consistency: Consistency }> {
    const metadata = this.#metadata
    if (options.consistency === 'stale' && metadata.staleRead != null) {
      throwIfAborted(options.signal)
      return { value: metadata.staleRead(fn), consistency: 'stale' }
    }
    return { value: await metadata.read(fn, { signal: options.signal, scope: { paths: [path] } }), consistency: 'linearizable' }
  }

  /**
   * A new extent for the whole of a small file, when its bytes may travel inside its commit: the file
   * fits INLINE_FILE_BYTES_MAX, the put does not ask for every copy before the commit (`--sync all`;
   * a commit needs only a majority of the logs), and placement picks exactly the voters of the group
   * that commits it.
   */
  #inlinePlacement (path: string, size: number, options: { sync?: WriteSync }): { id: string, replicas: string[], store: InlineExtents } | undefined {
    const replication = this.#replication
    const store = this.#inline
    if (options.sync === 'all' || size > INLINE_FILE_BYTES_MAX || replication?.placeInline === undefined || store === undefined) return undefined
    const voters = this.#metadata.inlineVoters?.(path) ?? []
    if (voters.length === 0) return undefined
    const id = randomUUID()
    const replicas = replication.placeInline(id, size, voters)
    return replicas === undefined ? undefined : { id, replicas, store }
  }

  /**
   * Deletes the copies of a put that certainly did not commit: nothing references them and no reader
   * can hold them, so other nodes' copies go at once (waiting a bounded time), and this node's as
   * soon as the put lets go of them.
   */
  async #abandon (extents: ExtentRecord[]): Promise<void> {
    const peers = this.#peers
    if (peers === undefined || this.#replication === undefined) {
      await this.#free(extents)
      return
    }
    const remote = extents.flatMap((e) => e.replicas.filter((p) => p !== this.#nodeId).map((p) => ({ p, e })))
    const signal = AbortSignal.timeout(Math.min(ABANDONED_DELETE_TIMEOUT_MS + remote.length * ABANDONED_DELETE_MS_PER_COPY, ABANDONED_DELETE_TIMEOUT_MS_MAX))
    setMaxListeners(Infinity, signal) // one listener per delete in flight
    // a bounded number at once: a big file has tens of thousands of copies
    let next = 0
    const failed: Array<{ p: PeerIdString, e: ExtentRecord }> = []
    const worker = async (): Promise<void> => {
      while (next < remote.length && !signal.aborted) {
        const copy = remote[next++]
        await peers.delete(copy.p, copy.e.id, { signal }).catch(() => { failed.push(copy) })
      }
    }
    await Promise.all(Array.from({ length: Math.min(ABANDONED_DELETES_IN_FLIGHT_MAX, remote.length) }, worker))
    failed.push(...remote.slice(next))
    if (failed.length > 0) {
      // unreferenced copies that could not be deleted now: replication's release tries them again
      // (and the periodic sweep of their node frees whatever is left)
      log('put abandoned: %d of %d copies on other nodes not deleted yet', failed.length, remote.length)
      this.#replication.release(failed.map(({ p, e }) => ({ ...e, replicas: [p] })))
    }
    await this.#gc.free(extents.map((e) => e.id))
  }

  /**
   * Drops the stage of a put that failed and returns the extents it held (freed), or undefined when
   * it could not: it is gone after the put's commit was proposed (the file may have committed), or
   * the drop's outcome is not known (then the stale stage check drops it later). Gone before any
   * commit was proposed (`proposed` false), it was never made: nothing is freed, and nothing of the
   * put can commit any more.
   */
  async #dropStage (path: string, stage: string, proposed: boolean): Promise<ExtentRecord[] | undefined> {
    try {
      const result = await this.#metadata.propose({ type: 'DropStage', stage, path }, { signal: AbortSignal.timeout(DROP_STAGE_TIMEOUT_MS) })
      return result.freed ?? []
    } catch (err) {
      if ((err as Error).name === 'NotFound') return proposed ? undefined : []
      log.error('put of %s failed and its stage %s was not dropped: %s', path, stage, (err as Error).message)
      return undefined
    }
  }

  /** Frees extents metadata dropped: this node's copy once its readers let go, other copies through replication. */
  async #free (extents: ExtentRecord[]): Promise<void> {
    this.#replication?.release(extents)
    await this.#gc.free(extents.map((e) => e.id))
  }

  async remove (rawPath: string, options: CallOptions = {}): Promise<RemoveResult> {
    const path = normalizePath(rawPath)
    const result = await this.#metadata.propose({ type: 'DeleteFile', path }, options)
    const freed = result.freed ?? []
    await this.#free(freed)
    return { path, freed: freed.length }
  }

  /**
   * Moves the file or directory at `from` to `to`; no byte moves. Within one metadata group it is
   * one operation (RenameFile: see the rules at RENAME_FILES_MAX in @dfs/api); a file moves to
   * another group by a transfer (transferFile: crash-safe, atomic for writers; a reader may see it
   * at both names for a moment), a directory file by file (#renameDirAcross). A file replaced at `to` (only
   * with `replace`) is freed as `remove` frees one: a reader that opened it keeps its bytes until it
   * ends.
   */
  async rename (rawFrom: string, rawTo: string, options: CallOptions & { replace?: boolean } = {}): Promise<RenameResult> {
    const from = normalizePath(rawFrom)
    const to = normalizePath(rawTo)
    requireNotRoot(from, to)
    if (!this.#sameGroup(from, to)) {
      const isDir = await this.#metadata.read((v) => v.getFile(from) === undefined && v.isDirectory(from), { scope: { paths: [from] }, signal: options.signal })
      if (isDir) return await this.#renameDirAcross(from, to, options)
      await this.#transfer(from, to, options)
      return { from, to }
    }
    const result = await this.#metadata.propose({ type: 'RenameFile', from, to, replace: options.replace === true }, { signal: options.signal })
    const freed = result.freed ?? []
    if (freed.length > 0) await this.#free(freed)
    return { from, to }
  }

  async #transfer (from: string, to: string, options: CallOptions & { replace?: boolean }): Promise<void> {
    const { freed } = await transferFile({ metadata: this.#metadata, nodeId: this.#nodeId, reached: this.#reached }, from, to, options)
    if (freed.length > 0) await this.#free(freed)
  }

  /**
   * Moves a directory to another metadata group file by file: each file by a transfer (atomic and
   * crash-safe on its own), then the directories: an empty one (explicit, or it would not exist) is
   * made at `to`, and every directory left under `from` is removed, deepest first. The whole is not atomic: a failure or a
   * crash midway leaves some files moved and the rest in place, each at exactly one name. The
   * rules of a rename within a group hold: `to` must not exist (a directory there is AlreadyExists,
   * a file NotADirectory), and at most RENAME_FILES_MAX files and directories move.
   */
  async #renameDirAcross (from: string, to: string, options: CallOptions): Promise<RenameResult> {
    const signal = options.signal
    const { files, dirs } = await this.#metadata.read((v) => {
      if (v.getFile(to) !== undefined) throw new NotADirectoryError(`${to} is a file, so directory ${from} cannot move there`, { path: to, from })
      if (v.isDirectory(to)) throw new AlreadyExistsError(`directory ${to} exists`, { path: to })
      const found: { files: string[], dirs: Array<{ path: string, empty: boolean }> } = { files: [], dirs: [] }
      const walk = (dir: string): void => {
        for (let after: string | undefined; ;) {
          const page = listDir(v, dir, { ...(after !== undefined ? { after } : {}), limit: LIST_PAGE_MAX })
          for (const e of page) {
            if (found.files.length + found.dirs.length >= RENAME_FILES_MAX) {
              throw new FailedPreconditionError(`${from} holds more than ${RENAME_FILES_MAX} files and directories, more than one rename moves`,
                { path: from, filesMax: RENAME_FILES_MAX })
            }
            if (e.type === 'file') found.files.push(e.path)
            else {
              found.dirs.push({ path: e.path, empty: e.size === 0 })
              walk(e.path)
            }
          }
          if (page.length < LIST_PAGE_MAX) return
          after = page[page.length - 1].name
        }
      }
      walk(from)
      return found
    }, { scope: { paths: [from, to] }, signal })
    const moved = (p: string): string => to + p.slice(from.length)
    for (const f of files) {
      throwIfAborted(signal)
      await this.#transfer(f, moved(f), { signal, replace: false })
    }
    // an empty directory exists only as an explicit one: it moves as one; so does `from` when empty
    for (const d of dirs) if (d.empty) await this.#metadata.propose({ type: 'MakeDir', path: moved(d.path) }, { signal })
    if (files.length === 0 && dirs.length === 0) await this.#metadata.propose({ type: 'MakeDir', path: to }, { signal })
    for (const d of [...dirs.map((x) => x.path), from].sort((a, b) => b.length - a.length)) {
      await this.#metadata.propose({ type: 'RemoveDir', path: d }, { signal }).catch((err: Error) => {
        // an implicit directory went with its last file; anything else is the caller's to see
        if (err.name !== 'NotFound') throw err
      })
    }
    return { from, to }
  }

  /** Whether one metadata group holds both paths (then one operation renames, copies or composes). */
  #sameGroup (a: string, b: string): boolean {
    const groupOf = this.#metadata.groupOf
    return groupOf === undefined || groupOf.call(this.#metadata, a) === groupOf.call(this.#metadata, b)
  }

  /**
   * Makes `to` a copy of the file at `from`. Within one metadata group no byte moves: the copy lists
   * the same extents (CopyFile; see CopyFileOp in @dfs/api), `shared` in the result. Across groups
   * the bytes are read and put again (verified on the way, as any get and put). `meta` given
   * replaces the source's content type and user metadata; a replaced file is freed as `remove` frees one.
   */
  async copy (rawFrom: string, rawTo: string, options: CallOptions & { replace?: boolean, meta?: FileMeta } = {}): Promise<CopyResult> {
    const from = normalizePath(rawFrom)
    const to = normalizePath(rawTo)
    requireNotRoot(from, to)
    const meta = options.meta === undefined ? undefined : requireFileMeta(options.meta) ?? {}
    if (this.#sameGroup(from, to)) {
      const op: MetadataOp = { type: 'CopyFile', from, to, mtimeMs: Date.now(), replace: options.replace !== false, ...(meta !== undefined ? { meta } : {}) }
      const result = await this.#metadata.propose(op, { signal: options.signal })
      const freed = result.freed ?? []
      if (freed.length > 0) await this.#free(freed)
      const file = result.file
      if (file == null) throw new Error(`metadata invariant broken: CopyFile to ${to} returned no file`)
      return copyResult(from, file, true)
    }
    if (options.replace === false) {
      const exists = await this.#metadata.read((v) => v.getFile(to) !== undefined, { scope: { paths: [to] }, signal: options.signal })
      if (exists) throw new AlreadyExistsError(`${to} exists (copy with replace to overwrite it)`, { path: to })
    }
    const source = await this.open(from, { signal: options.signal })
    const keep = meta ?? { ...(source.stat.contentType !== undefined ? { contentType: source.stat.contentType } : {}), ...(source.stat.meta !== undefined ? { user: source.stat.meta } : {}) }
    try {
      await this.put(to, source.body, { signal: options.signal, declaredSize: source.stat.size, md5: true, meta: keep })
    } finally {
      await source.body.return(undefined).catch(() => {})
    }
    const file = await this.#metadata.read((v) => v.getFile(to), { scope: { paths: [to] }, signal: options.signal })
    if (file === undefined) throw new NotFoundError(`${to} was removed as it was copied`, { path: to })
    return copyResult(from, file, false)
  }

  /** Sets the modification time of the file at `path` (SetFileTime: its content and version stay). */
  async setMtime (rawPath: string, mtimeMs: number, options: CallOptions = {}): Promise<{ path: string, mtimeMs: number }> {
    const path = normalizePath(rawPath)
    const result = await this.#metadata.propose({ type: 'SetFileTime', path, mtimeMs }, { signal: options.signal })
    return { path, mtimeMs: result.file?.mtimeMs ?? mtimeMs }
  }

  /** Makes `path` an explicit directory (MakeDir: idempotent; it stays when emptied, until `rmdir`). */
  async mkdir (rawPath: string, options: CallOptions = {}): Promise<DirResult> {
    const path = normalizePath(rawPath)
    await this.#metadata.propose({ type: 'MakeDir', path }, { signal: options.signal })
    return { path }
  }

  /** Removes the empty directory at `path` (DirectoryNotEmpty while it has entries, NotFound when there is none). */
  async rmdir (rawPath: string, options: CallOptions = {}): Promise<DirResult> {
    const path = normalizePath(rawPath)
    await this.#metadata.propose({ type: 'RemoveDir', path }, { signal: options.signal })
    return { path }
  }

  /**
   * Makes `to` a file of the extents of `parts` in order, in one metadata operation (ComposeFile:
   * see the rules at COMPOSE_PARTS_MAX in @dfs/api): no byte moves, the parts disappear, and a file
   * replaced at `to` (only with `replace`) is freed as `remove` frees one. Parts outside the
   * top-level directory of `to` are refused before anything is proposed.
   */
  async compose (rawTo: string, rawParts: readonly string[], options: CallOptions & { meta?: FileMeta, replace?: boolean } = {}): Promise<ComposeResult> {
    const to = normalizePath(rawTo)
    if (!Array.isArray(rawParts) || rawParts.length < 1 || rawParts.length > COMPOSE_PARTS_MAX) {
      throw new InvalidArgumentError(`a compose takes 1 to ${COMPOSE_PARTS_MAX} parts`, { to, parts: Array.isArray(rawParts) ? rawParts.length : typeof rawParts })
    }
    const parts = rawParts.map((p) => normalizePath(p))
    requireComposeWithinTopLevel(to, parts)
    const meta = requireFileMeta(options.meta)
    const op: MetadataOp = { type: 'ComposeFile', to, parts, mtimeMs: Date.now(), replace: options.replace === true, ...(meta !== undefined ? { meta } : {}) }
    const result = await this.#metadata.propose(op, { signal: options.signal })
    const freed = result.freed ?? []
    if (freed.length > 0) await this.#free(freed)
    const file = result.file
    if (file == null) throw new Error(`metadata invariant broken: ComposeFile of ${to} returned no file`)
    return { path: to, size: file.size, extents: file.extents.length, ...(file.meta?.etag !== undefined ? { etag: file.meta.etag } : {}) }
  }
}

function copyResult (from: string, file: FileRecord, shared: boolean): CopyResult {
  return {
    from,
    to: file.path,
    size: file.size,
    version: file.version,
    mtimeMs: file.mtimeMs,
    shared,
    ...(file.meta?.etag !== undefined ? { etag: file.meta.etag } : {})
  }
}

/** A file's metadata as `fs.stat` and `fs.get` answer it: only the fields that are set. */
export function metaFields (meta: FileMeta | undefined): FileMetaFields {
  if (meta === undefined) return {}
  return {
    ...(meta.contentType !== undefined ? { contentType: meta.contentType } : {}),
    ...(meta.etag !== undefined ? { etag: meta.etag } : {}),
    ...(meta.user !== undefined ? { meta: { ...meta.user } } : {})
  }
}

/** A file's listing entry with its mtime, version and etag (see DirEntry). */
function listed (entry: DirEntry, file: FileRecord | undefined): DirEntry {
  if (file === undefined) return entry
  return { ...entry, mtimeMs: file.mtimeMs, version: file.version, ...(file.meta?.etag !== undefined ? { etag: file.meta.etag } : {}) }
}

/**
 * A file's stat with the extents [page.from, page.from + page.count) (all of them without `page`);
 * FailedPrecondition when `page.version` is set and the file is at another version.
 */
function statOf (view: MetadataView, path: string, page?: { from: number, count: number, version?: number }): Omit<StatResult, 'consistency'> {
  const file: FileRecord | undefined = view.getFile(path)
  if (file == null) {
    let isDir = false
    try {
      isDir = view.isDirectory(path)
    } catch {}
    if (isDir) throw new IsADirectoryError(`${path} is a directory`, { path })
    throw new NotFoundError(`no file at ${path}`, { path })
  }
  if (page?.version !== undefined && page.version !== file.version) {
    throw new FailedPreconditionError(`${path} is at version ${file.version}, not ${page.version}`, { path, version: file.version, expected: page.version })
  }
  const total = file.extents.length
  if (page !== undefined && page.from > total) {
    throw new InvalidArgumentError(`extentsFrom ${page.from} is past the ${total} extents of ${path}`, { path, extentsFrom: page.from, extentsTotal: total })
  }
  const ids = page === undefined ? file.extents : file.extents.slice(page.from, page.from + page.count)
  const extents = ids.map((id) => {
    const e = view.getExtent(id)
    if (e == null) throw new Error(`metadata invariant broken: file ${path} references missing extent ${id}`)
    return e
  })
  return { path, size: file.size, version: file.version, mtimeMs: file.mtimeMs, extents, extentsTotal: total, ...metaFields(file.meta) }
}

/**
 * A directory's entries; a tenant's root is a directory while the tenant exists, also while it
 * holds no file.
 */
function listDir (view: MetadataView, path: string, page?: ListDirPage): DirEntry[] {
  try {
    return view.list(path, page)
  } catch (err) {
    const { tenant, path: inTenant } = fromInternalPath(path)
    if (err instanceof NotFoundError && tenant !== null && inTenant === '/' && view.tenant(tenant) !== undefined) return []
    throw err
  }
}

/**
 * Bytes a put at `path` may still receive before the quota of the tenant it is under would refuse
 * it: Infinity outside a tenant or without a byte quota. Throws QuotaExceeded when `declared` bytes
 * are already too many, or the file would be one too many; NotFound when the tenant does not exist.
 * Mirrors the state machine's check (usage over a lowered quota is allowed to shrink).
 */
export function tenantBytesLeft (view: MetadataView, path: string, declared: number): number {
  const tenant = fromInternalPath(path).tenant
  if (tenant === null) return Infinity
  const info = view.tenant(tenant)
  if (info === undefined) throw new NotFoundError(`tenant ${tenant} does not exist`, { tenant })
  const old = view.getFile(path)
  if (info.quotaFiles !== null && old === undefined && info.usedFiles + 1 > info.quotaFiles) {
    throw new QuotaExceededError(`tenant ${tenant} holds ${info.usedFiles} files, its quota`,
      { tenant, quotaFiles: info.quotaFiles, usedFiles: info.usedFiles })
  }
  if (info.quotaBytes === null) return Infinity
  // what the tenant may hold with this file in place of the old one; never less than what it had
  const left = Math.max(info.quotaBytes, info.usedBytes) - info.usedBytes + (old?.size ?? 0)
  if (declared > left) throw quotaExceeded(path, declared, left, info.quotaBytes, info.usedBytes)
  return left
}

function quotaExceeded (path: string, size: number, left: number, quotaBytes?: number, usedBytes?: number): QuotaExceededError {
  const tenant = fromInternalPath(path).tenant
  return new QuotaExceededError(`a file of ${size} bytes at ${path} would take tenant ${tenant ?? ''} past its byte quota (${left} bytes left for it)`,
    { path, tenant, size, bytesLeft: left, ...(quotaBytes !== undefined ? { quotaBytes, usedBytes } : {}) })
}

/** The checks PutFile applies, made before any bytes are received. */
function checkPutTarget (view: MetadataView, path: string): void {
  if (path === '/') throw new IsADirectoryError('/ is a directory', { path })
  if (view.getFile(path) == null && view.isDirectory(path)) throw new IsADirectoryError(`${path} is a directory`, { path })
  for (let p = parentPath(path); p !== '/'; p = parentPath(p)) {
    if (view.getFile(p) != null) throw new NotADirectoryError(`${p} is a file, not a directory`, { path: p })
  }
}

/**
 * The logical bytes of piece `index` of a put of `path` (see PutFileOptions.pieces): bytes a client
 * sent that do not decode to exactly the size it gave are MalformedFrame (the put stores nothing).
 */
function decodePiece (path: string, index: number, piece: Piece, into?: Uint8Array): Uint8Array {
  try {
    return decodeExtent({ id: `piece ${index}`, size: piece.size }, piece.codec as NonNullable<Piece['codec']>, piece.bytes, {}, into)
  } catch (err) {
    const reason = (err as DfsError).details?.reason
    throw new MalformedFrameError(`piece ${index} of the put of ${path} does not decode to its ${piece.size} bytes: ${typeof reason === 'string' ? reason : (err as Error).message}`,
      { path, piece: index, codec: piece.codec, size: piece.size, storedSize: piece.bytes.byteLength })
  }
}
