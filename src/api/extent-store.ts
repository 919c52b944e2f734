import type { CallOptions, Logger } from './options.js'

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
  /** Length of the extent's bytes. */
  size: number
  /** Checksum of the bytes, computed before they were written. */
  checksum: Checksum
}

/** Totals of a store, for placement and `cluster status`. */
export interface ExtentStoreUsage {
  extents: number
  bytes: number
}

/**
 * Durable storage of extents on one node.
 *
 * Contract (`extentStoreSuite` in `@dfs/api/testing` checks it for every implementation):
 * - `put` resolves only after the bytes and their checksum are durable (fsync'd). Putting an id that
 *   exists with the same bytes is a no-op; with different bytes it is AlreadyExists (extents are
 *   immutable). It does not hold on to `bytes` once it has settled: callers reuse their buffers
 *   (a store that keeps the bytes in memory keeps a copy).
 * - `get` verifies the checksum of what it read and throws CorruptExtent (naming the extent and both
 *   checksums) on a mismatch; it never returns wrong bytes. A missing extent is NotFound.
 * - `delete` is idempotent and resolves to whether the extent existed.
 * - Ids must match EXTENT_ID_PATTERN and sizes must be ≤ EXTENT_SIZE_MAX, else InvalidArgument.
 * - After `close`, calls fail with Unavailable.
 */
export interface ExtentStore {
  open: (options?: CallOptions) => Promise<void>
  close: () => Promise<void>
  put: (id: string, bytes: Uint8Array, options?: CallOptions & { checksum?: Checksum }) => Promise<ExtentInfo>
  get: (id: string, options?: CallOptions) => Promise<Uint8Array>
  has: (id: string, options?: CallOptions) => Promise<boolean>
  delete: (id: string, options?: CallOptions) => Promise<boolean>
  stat: (id: string, options?: CallOptions) => Promise<ExtentInfo>
  /** Every extent, in id order; `after` resumes a listing after that id. */
  list: (options?: CallOptions & { after?: string, limit?: number }) => AsyncIterable<ExtentInfo>
  usage: (options?: CallOptions) => Promise<ExtentStoreUsage>
}

/** What a store implementation is given when a node builds it. */
export interface ExtentStoreInit {
  /** A directory the store owns exclusively (created if missing). */
  dir: string
  logger: Logger
}

export type ExtentStoreFactory = (init: ExtentStoreInit) => ExtentStore
