import { constants } from 'node:fs'
import { open, rm, type FileHandle } from 'node:fs/promises'
import * as zlib from 'node:zlib'
import { EXTENT_SIZE_MAX, alignUp, alignedMemory, refusesDirect } from '@dfs/api'

/*
 * The bytes of a large extent in a file of its own, written and read with O_DIRECT where the file
 * system allows it (see the layout comment of level-extent-store.ts for where these files sit).
 *
 * WHY O_DIRECT. Written through the page cache, every MiB of new extent bytes costs the writing
 * process ~3 ms of kernel time on this VM (perf: copy_folio_from_iter_atomic, the copy into freshly
 * allocated page-cache pages, which the hypervisor backs on first touch), against ~0.2 ms with
 * O_DIRECT, which hands the device our own (already resident) buffer: 64 fsync'd 4 MiB files
 * wrote at ~245 MiB/s and 3.2 ms of CPU per MiB buffered, ~1,020 MiB/s and 0.2 ms per MiB direct.
 * Reads go direct too, so they do not fill the page cache with copies nobody reads twice (a node
 * keeps no cache of its own bytes; the client verifies each extent once). What direct I/O demands:
 * buffer address, file offset and length aligned to the device's logical block (512 bytes here;
 * 4 KiB, DIRECT_IO_ALIGN, covers every common device). Extent bytes arrive in ordinary Buffers, so
 * they are copied (~0.3 ms per MiB, computing their CRC-32 on the way) into one of a few aligned
 * slots, and a file's length is its stored bytes rounded up to DIRECT_IO_ALIGN with zeros; the header
 * says how many of them are the extent's.
 *
 * WHERE the aligned memory comes from: one `alignedMemory` of SLOTS × EXTENT_SIZE_MAX (@dfs/api's
 * direct-io.ts, shared with the Raft log), carved into slots. When every slot is busy, or the file
 * system refuses O_DIRECT (tmpfs: EINVAL at open, as with a misaligned buffer at write), the same
 * call runs buffered — same bytes, same fsyncs, only slower — and a refusal switches the store to
 * buffered I/O for good.
 */

/** Aligned buffers one process holds for direct I/O (each EXTENT_SIZE_MAX): 32 MiB in all. */
const SLOTS = 8

/** Buffered writes go in pieces this large: one copy of 4 MiB into new page-cache pages was up to 3× slower per MiB than 256 KiB ones. */
const BUFFERED_WRITE_BYTES = 256 * 1024

const SLOT_BYTES = alignUp(EXTENT_SIZE_MAX)

/**
 * CRC-32 (zlib's, as gzip and PNG use; `previous` continues one) of stored bytes; undefined on a
 * Node without `zlib.crc32` (before 20.15).
 */
export const crc32: ((bytes: Uint8Array, previous?: number) => number) | undefined =
  (zlib as { crc32?: (bytes: Uint8Array, previous?: number) => number }).crc32

/**
 * Pieces in which a copy into or out of a slot also computes the CRC-32, each piece while it is in
 * the cache: a 4 MiB copy and then a CRC over the copy go to memory twice, ~0.7–0.9 ms per MiB here,
 * against ~0.36 ms in 256 KiB pieces.
 */
const CRC_PIECE_BYTES = 256 * 1024

/** Copies `src` to the start of `dst` and returns the CRC-32 of `src` (undefined without crc32). */
function copyWithCrc (dst: Uint8Array, src: Uint8Array): number | undefined {
  if (crc32 === undefined) {
    dst.set(src)
    return undefined
  }
  let crc = 0
  for (let at = 0; at < src.byteLength; at += CRC_PIECE_BYTES) {
    const piece = src.subarray(at, Math.min(at + CRC_PIECE_BYTES, src.byteLength))
    dst.set(piece, at)
    crc = crc32(piece, crc)
  }
  return crc
}

/** The aligned slots of this process (shared by every store in it); created on first use. */
let pool: { free: Uint8Array[] } | undefined

function takeSlot (): Uint8Array | undefined {
  if (pool === undefined) {
    try {
      const memory = alignedMemory(SLOTS * SLOT_BYTES)
      pool = { free: Array.from({ length: SLOTS }, (_, i) => new Uint8Array(memory, i * SLOT_BYTES, SLOT_BYTES)) }
    } catch {
      // no room for it (a process under `ulimit -v`: V8 reserves address space around a memory):
      // every call runs buffered, as when all slots are busy
      pool = { free: [] }
    }
  }
  return pool.free.pop()
}

function giveSlot (slot: Uint8Array): void {
  pool?.free.push(slot)
}

/**
 * Reads and writes extent files; `direct` turns false (for good) the first time the file system
 * refuses O_DIRECT.
 */
export class ExtentFiles {
  #direct: boolean
  readonly #onBuffered: (reason: string) => void

  constructor (options: { direct?: boolean, onBuffered?: (reason: string) => void } = {}) {
    this.#direct = options.direct ?? process.platform === 'linux'
    this.#onBuffered = options.onBuffered ?? (() => {})
  }

  #giveUpDirect (err: unknown): void {
    if (!this.#direct) return
    this.#direct = false
    this.#onBuffered((err as Error)?.message ?? String(err))
  }

  /**
   * Creates `path` (it must not exist) holding `bytes` followed by zeros up to a multiple of
   * DIRECT_IO_ALIGN, and fdatasyncs it. The directory entry is not synced here (see `syncDir`). On
   * failure the file may be left behind, partly written: the caller removes it. Resolves to the
   * CRC-32 of `bytes` (undefined on a Node without crc32).
   */
  async write (path: string, bytes: Uint8Array): Promise<number | undefined> {
    if (this.#direct && bytes.byteLength > 0) {
      const slot = takeSlot()
      if (slot !== undefined) {
        try {
          let file: FileHandle | undefined
          try {
            file = await open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_DIRECT, 0o644)
            const length = alignUp(bytes.byteLength)
            const crc = copyWithCrc(slot, bytes)
            slot.fill(0, bytes.byteLength, length)
            await writeFully(file, slot, 0, length, path)
            await file.datasync()
            return crc
          } finally {
            await file?.close()
          }
        } catch (err) {
          if (!refusesDirect(err)) throw err
          this.#giveUpDirect(err)
          // the refused open created nothing, a refused write left an empty file: start over
          await removeQuietly(path)
        } finally {
          giveSlot(slot)
        }
      }
    }
    const file = await open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o644)
    try {
      const length = alignUp(bytes.byteLength)
      for (let at = 0; at < bytes.byteLength; at += BUFFERED_WRITE_BYTES) {
        await writeFully(file, bytes, at, Math.min(BUFFERED_WRITE_BYTES, bytes.byteLength - at), path)
      }
      // the same length as a direct write: a file's length never depends on how it was written
      if (length > bytes.byteLength) await file.truncate(length)
      await file.datasync()
      return crc32?.(bytes)
    } finally {
      await file.close()
    }
  }

  /**
   * The first `stored` bytes of `path` (in a new Buffer), or fewer if the file is shorter (the
   * caller calls that corrupt), and their CRC-32 (undefined on a Node without crc32). ENOENT passes
   * through as it is.
   */
  async read (path: string, stored: number): Promise<{ bytes: Buffer, crc: number | undefined }> {
    // (a length past a slot is a damaged header's or file's: read buffered, the caller finds it wrong)
    if (this.#direct && stored > 0 && alignUp(stored) <= SLOT_BYTES) {
      const slot = takeSlot()
      if (slot !== undefined) {
        try {
          const file = await open(path, constants.O_RDONLY | constants.O_DIRECT)
          try {
            // ask for the aligned length; a longer file is fine (only `stored` bytes are the extent's)
            const got = await readFully(file, slot, alignUp(stored))
            const bytes = Buffer.allocUnsafeSlow(Math.min(got, stored))
            return { bytes, crc: copyWithCrc(bytes, slot.subarray(0, bytes.byteLength)) }
          } finally {
            await file.close()
          }
        } catch (err) {
          if (!refusesDirect(err)) throw err
          this.#giveUpDirect(err)
        } finally {
          giveSlot(slot)
        }
      }
    }
    const file = await open(path, constants.O_RDONLY)
    try {
      const out = Buffer.allocUnsafeSlow(stored)
      const got = await readFully(file, out, stored)
      const bytes = got === stored ? out : out.subarray(0, got)
      return { bytes, crc: crc32?.(bytes) }
    } finally {
      await file.close()
    }
  }
}

/** Writes `length` bytes of `buffer` from `offset` at the same position of `file`, however many calls it takes. */
async function writeFully (file: FileHandle, buffer: Uint8Array, offset: number, length: number, path: string): Promise<void> {
  for (let done = 0; done < length;) {
    const { bytesWritten } = await file.write(buffer, offset + done, length - done, offset + done)
    if (bytesWritten <= 0) throw Object.assign(new Error(`short write to ${path}`), { code: 'EIO' })
    done += bytesWritten
  }
}

/** Reads the first `length` bytes of `file` into `buffer`, fewer at its end; resolves to how many. */
async function readFully (file: FileHandle, buffer: Uint8Array, length: number): Promise<number> {
  let got = 0
  while (got < length) {
    const { bytesRead } = await file.read(buffer, got, length - got, got)
    if (bytesRead === 0) break
    got += bytesRead
  }
  return got
}

/** Removes `path` if it is there; any other failure is returned, not thrown. */
export async function removeQuietly (path: string): Promise<Error | undefined> {
  try {
    await rm(path, { force: true })
    return undefined
  } catch (err) {
    return err instanceof Error ? err : new Error(String(err))
  }
}

/**
 * Runs `fn` for callers that overlap by sharing runs: one runs, and one more waits to start after
 * it, which covers every caller that arrived before it started. So N overlapping callers cost at
 * most two runs, and each caller's run started after the caller asked.
 */
export function coalesced (fn: () => Promise<void>): () => Promise<void> {
  let running: Promise<void> = Promise.resolve()
  let queued: Promise<void> | undefined
  return async () => {
    if (queued !== undefined) return await queued
    const next = running.then(async () => {
      queued = undefined
      await fn()
    })
    queued = next
    running = next.catch(() => {})
    return await next
  }
}
