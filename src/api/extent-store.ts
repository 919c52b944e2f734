import type { ExtentCodec } from './codec.js'
import type { CallOptions, Logger } from './options.js'

export * from './codec.js'

/** Largest extent a store must accept (the default extent size of files is this, too). */
export const EXTENT_SIZE_MAX = 4 * 1024 * 1024

/** Extent ids are UUIDs (RFC 4122 text form, lower case). */
export const EXTENT_ID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

/**
 * Checksums are written `algorithm:hex`. dfs computes `sha256:` today; a reader must reject an
 * algorithm it does not know rather than skip the check.
 */
export type Checksum = string

/** What a store knows about one extent. */
export interface ExtentInfo {
  id: string
  /** Length of the extent's logical (decoded) bytes. */
  size: number
  /** Checksum of the logical bytes, computed before they were written. */
  checksum: Checksum
  /** The codec the bytes are stored with; absent when they are stored raw. */
  codec?: ExtentCodec
  /** Length of the stored (encoded) bytes; present exactly when `codec` is. */
  storedSize?: number
}

/** Totals of a store, for placement and `cluster status`. */
export interface ExtentStoreUsage {
  extents: number
  /** Bytes the extents take as stored (encoded ones at their encoded length): what fills the disk. */
  bytes: number
}

/** Options of `put`. */
export interface ExtentPutOptions extends CallOptions {
  /** The checksum the caller computed of the logical bytes; a mismatch is CorruptExtent, nothing stored. */
  checksum?: Checksum
  /**
   * true: `checksum` is known to be that of these bytes' logical form (the caller computed it from
   * them, or received both from a cluster member over an authenticated channel), so the store may
   * record it without hashing the bytes again; a deep read still verifies them. With `codec`, the
   * caller also vouches that the bytes decode to those logical bytes (the coordinator checked its
   * encoding), and the store does not decode them either. Needs `checksum`. Default false.
   */
  checksumTrusted?: boolean
  /**
   * `bytes` are encoded with this codec (one of the store's `codecs`), and are stored as they are:
   * the store decodes them to check them against `size` and the checksum before it writes anything.
   */
  codec?: ExtentCodec
  /** The logical size of encoded bytes; required with `codec`. */
  size?: number
  /**
   * false: the caller keeps these bytes durable elsewhere until a later `sync` of this store resolves
   * (a Raft log entry that carried them, replayed after a crash), so the put may resolve before they
   * reach the disk, and a crash before that `sync` may lose them. Only a store with `sync` honours
   * it; others write durably whatever it says. Default true.
   */
  durable?: boolean
}

/** Options of `get` and `getEncoded`. */
export interface ExtentReadOptions extends CallOptions {
  /**
   * true: verify against the checksum of the logical bytes even where the store would check a cheaper
   * checksum of the stored bytes recorded when they were written (a scrub's read: it also finds bytes
   * that were wrong when written). Default false.
   */
  deep?: boolean
}

/** `getEncoded`: an extent's bytes as they are stored, verified. */
export interface EncodedExtentRead {
  info: ExtentInfo
  /** `info.codec`'s encoding of the logical bytes, or the logical bytes themselves when it has none. */
  bytes: Uint8Array
}

/**
 * Durable storage of extents on one node.
 *
 * Contract (`extentStoreSuite` in `@dfs/api/testing` checks it for every implementation):
 * - `put` resolves only after the bytes and their checksum are durable (fsync'd) — unless it was
 *   given `durable: false` and the store has `sync`: then once `sync` resolves. Putting an id that
 *   exists with the same bytes is a no-op; with different bytes it is AlreadyExists (extents are
 *   immutable). It does not hold on to `bytes` once it has settled: callers reuse their buffers
 *   (a store that keeps the bytes in memory keeps a copy).
 * - `get` verifies what it read and throws CorruptExtent (naming the extent and both checksums of the
 *   logical bytes) on a mismatch; it never returns other bytes than those the put verified (or was
 *   vouched for). It may verify a checksum of the stored bytes recorded at put instead of hashing the
 *   logical ones, unless asked for a `deep` read. A missing extent is NotFound.
 * - Codecs (optional): a store that lists `codecs` accepts `put` of bytes encoded with one of them
 *   and keeps them encoded; `get` still returns the logical bytes, `getEncoded` the stored ones.
 *   Identity (size, checksum, "same bytes" for AlreadyExists) is always that of the logical bytes,
 *   whatever form either copy is in. Records written without a codec read as raw.
 * - `delete` is idempotent and resolves to whether the extent existed.
 * - Ids must match EXTENT_ID_PATTERN and sizes must be ≤ EXTENT_SIZE_MAX, else InvalidArgument.
 * - After `close`, calls fail with Unavailable.
 */
export interface ExtentStore {
  open: (options?: CallOptions) => Promise<void>
  close: () => Promise<void>
  put: (id: string, bytes: Uint8Array, options?: ExtentPutOptions) => Promise<ExtentInfo>
  get: (id: string, options?: ExtentReadOptions) => Promise<Uint8Array>
  /** Codecs whose encoded bytes `put` takes and keeps as they are; none (or absent): it takes logical bytes only. */
  readonly codecs?: readonly ExtentCodec[]
  /**
   * The stored bytes, verified like `get` (decoded and checked against the checksum) but returned as
   * they are stored, to copy to another node without decoding and encoding again. Optional: callers
   * fall back to `get`.
   */
  getEncoded?: (id: string, options?: ExtentReadOptions) => Promise<EncodedExtentRead>
  has: (id: string, options?: CallOptions) => Promise<boolean>
  delete: (id: string, options?: CallOptions) => Promise<boolean>
  stat: (id: string, options?: CallOptions) => Promise<ExtentInfo>
  /** Every extent, in id order; `after` resumes a listing after that id. */
  list: (options?: CallOptions & { after?: string, limit?: number }) => AsyncIterable<ExtentInfo>
  usage: (options?: CallOptions) => Promise<ExtentStoreUsage>
  /**
   * Makes durable every put that resolved before the call, `durable: false` ones included. Optional:
   * a store without it writes every put durably.
   */
  sync?: (options?: CallOptions) => Promise<void>
  /**
   * Of what `usage` counts, the copies of `durable: false` puts the store holds in memory and has not
   * written yet (for metrics). Optional: a store that writes every put when it resolves has none.
   */
  held?: () => ExtentStoreUsage
}

/** What a store implementation is given when a node builds it. */
export interface ExtentStoreInit {
  /** A directory the store owns exclusively (created if missing). */
  dir: string
  logger: Logger
}

export type ExtentStoreFactory = (init: ExtentStoreInit) => ExtentStore
