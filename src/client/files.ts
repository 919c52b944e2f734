import { createHash } from 'node:crypto'
import { createReadStream, createWriteStream } from 'node:fs'
import { rename, stat, unlink } from 'node:fs/promises'
import { basename, join } from 'node:path'
import { once } from 'node:events'
import {
  CODEC_OFFLOAD_BYTES_MIN, CorruptExtentError, EXTENT_SIZE_MAX, FailedPreconditionError, isCompressionSetting, InvalidArgumentError, MalformedFrameError, NodeUnreachableError, NotFoundError,
  type CompressionSetting, type Consistency, type ExtentRecord, type FsPutParams, type FsReadParams,
  type GetResult, type PutResult, type StatResult
} from '@dfs/api'
import { DATA_CHUNK_BYTES_MAX } from '../net/constants.js'
import type { DfsClient, FromAnyNode } from './index.js'
import { encodePieces } from './pieces.js'
import type { Writable } from 'node:stream'

/**
 * What `fs.get` answers, from a node of any version: one without range reads sends neither the range
 * nor `extentsOffset`, and always the whole file; one without bounded answers sends no
 * `extentsTotal` and lists every extent of the range.
 */
export type GetReply = Omit<FromAnyNode<GetResult>, 'offset' | 'length' | 'extentsOffset' | 'extentsTotal'> &
Partial<Pick<GetResult, 'offset' | 'length' | 'extentsOffset' | 'extentsTotal'>>

/** What `fs.stat` answers, from a node of any version: one without paged stat sends no `extentsTotal` and lists every extent. */
export type StatReply = Omit<FromAnyNode<StatResult>, 'extentsTotal'> & Partial<Pick<StatResult, 'extentsTotal'>>

/** Times statFile starts over when the file changes between its pages. */
export const STAT_RESTARTS_MAX = 5
/** Most pages statFile reads (FILE_EXTENTS_MAX / STAT_EXTENTS_MAX is 66; a node's smaller pages get room). */
const STAT_PAGES_MAX = 1024

/**
 * A file's metadata with every extent of one version: the first page, then the next ones of the same
 * version (`extentsFrom`, `version`) until `extentsTotal`; when the file changes meanwhile
 * (FailedPrecondition) it starts over, at most STAT_RESTARTS_MAX times.
 */
export async function statFile (client: DfsClient, remote: string, options: { consistency?: Consistency, tenant?: string } = {}): Promise<StatReply & { extentsTotal: number }> {
  const base: FsReadParams = {
    path: remote,
    ...(options.consistency != null ? { consistency: options.consistency } : {}),
    ...(options.tenant != null ? { tenant: options.tenant } : {})
  }
  for (let attempt = 0; ; attempt++) {
    const first: StatReply = await client.call('fs.stat', base)
    const total = first.extentsTotal ?? first.extents.length
    const extents: ExtentRecord[] = [...first.extents]
    try {
      for (let pages = 1; extents.length < total; pages++) {
        if (pages >= STAT_PAGES_MAX) throw new MalformedFrameError(`the node answered fs.stat of ${remote} in more than ${STAT_PAGES_MAX} pages`, { path: remote })
        const page: StatReply = await client.call('fs.stat', { ...base, extentsFrom: extents.length, version: first.version })
        if (page.extents.length === 0 || page.extentsTotal !== total) {
          throw new MalformedFrameError(`the node answered fs.stat of ${remote} with an empty or inconsistent page`, { path: remote, extentsFrom: extents.length })
        }
        extents.push(...page.extents.slice(0, total - extents.length))
      }
    } catch (err) {
      if ((err as Error).name === 'FailedPrecondition' && attempt < STAT_RESTARTS_MAX) continue
      throw err
    }
    return { ...first, extents, extentsTotal: total }
  }
}

/** What getFile read: the node's answer with the range it served. */
export type GotFile = Omit<GetReply, 'offset' | 'length'> & { offset: number, length: number, local: string }

/**
 * Options of putFile: what `fs.put` takes besides the path and size, and `compression`: the codec
 * the client compresses with before sending (see encodePieces), `off` to send the bytes as they are;
 * by default the cluster's `compression` setting.
 */
export type PutFileOptions = Pick<FsPutParams, 'sync' | 'tenant' | 'contentType' | 'meta' | 'md5'> & { compression?: CompressionSetting }

/**
 * Streams a local file to `remote`; memory stays bounded by the flow-control window. The bytes go
 * as `fs.put.encoded` pieces, compressed here when they shrink (a node then neither compresses them
 * nor receives the bytes saved); a node too old for that method gets them as `fs.put`.
 */
export async function putFile (client: DfsClient, local: string, remote: string, onBytes: (n: number) => void = () => {}, options: PutFileOptions = {}): Promise<PutResult> {
  let info
  try {
    info = await stat(local)
  } catch (err) {
    if ((err as NodeJS.ErrnoException)?.code === 'ENOENT') throw new NotFoundError(`local file ${local} does not exist`, { path: local })
    throw err
  }
  if (!info.isFile()) throw new InvalidArgumentError(`${local} is not a regular file`, { path: local })
  // progress counts each byte once, also when the file is sent again as fs.put
  let read = 0
  let reported = 0
  /** The file's bytes in chunks of `chunkBytes` (each a buffer of its own, given up once yielded). */
  async function * body (chunkBytes: number): AsyncGenerator<Uint8Array> {
    read = 0
    for await (const chunk of createReadStream(local, { highWaterMark: chunkBytes })) {
      read += (chunk as Buffer).byteLength
      if (read > reported) {
        onBytes(read - reported)
        reported = read
      }
      yield chunk as Buffer
    }
  }
  // the size lets a node refuse a put past a tenant's quota before any byte is sent
  const params: FsPutParams = { path: remote, size: info.size }
  for (const k of ['sync', 'tenant', 'contentType', 'meta', 'md5'] as const) {
    if (options[k] != null) Object.assign(params, { [k]: options[k] })
  }
  const call = { timeoutMs: client.timeoutMs }
  // the cluster's setting, unless the caller gave one: bytes compressed with another codec would be
  // decoded and compressed again by the node, and with `off` not compressed at all. Asked only for a
  // file worth a round trip; a node that will not say leaves the default.
  const compression = options.compression ?? (info.size >= CODEC_OFFLOAD_BYTES_MIN
    ? await client.rpc.call('cluster.config', {}, call).then((c) => isCompressionSetting(c.compression) ? c.compression : undefined, () => undefined)
    : undefined)
  if (compression !== 'off') {
    try {
      // read a piece at a time: a whole piece is then one buffer, compressed where it was read
      return await client.rpc.upload('fs.put.encoded', params, encodePieces(body(EXTENT_SIZE_MAX), { compression }), call)
    } catch (err) {
      if ((err as Error)?.name !== 'UnknownMethod') throw err
    }
  }
  return await client.rpc.upload('fs.put', params, body(DATA_CHUNK_BYTES_MAX), call)
}

/**
 * Reads `remote`, or its bytes [offset, offset + length), into `dest` (a path, a directory, or a
 * writable such as stdout). Each extent the range covers whole is checked against the checksum
 * metadata holds for it as it arrives (the node checked every extent it read, also the first and last
 * that the range cuts), and exactly the range's bytes must arrive; a file destination is written to a
 * temporary name and renamed only when every byte checked out (a device or a FIFO is written in
 * place). `consistency: 'stale'` lets the node answer from its applied metadata (also without a
 * quorum); the reply says what it served.
 */
export async function getFile (client: DfsClient, remote: string, dest: string | Writable, onStart: (length: number) => void = () => {}, onBytes: (n: number) => void = () => {},
  options: { consistency?: Consistency, tenant?: string, offset?: number, length?: number } = {}): Promise<GotFile> {
  for (const key of ['offset', 'length'] as const) {
    const v = options[key]
    if (v !== undefined && !(Number.isSafeInteger(v) && v >= 0)) throw new InvalidArgumentError(`${key} must be an integer >= 0`, { [key]: v })
  }
  const ranged = options.offset !== undefined || options.length !== undefined
  const params: FsReadParams = {
    path: remote,
    ...(options.consistency != null ? { consistency: options.consistency } : {}),
    ...(options.tenant != null ? { tenant: options.tenant } : {}),
    ...(options.offset !== undefined ? { offset: options.offset } : {}),
    ...(options.length !== undefined ? { length: options.length } : {})
  }
  const { result, body }: { result: GetReply, body: AsyncGenerator<Uint8Array> } = await client.rpc.download('fs.get', params, { timeoutMs: client.timeoutMs })
  let served: Served
  try {
    served = servedRange(result, ranged ? { offset: options.offset ?? 0, length: options.length } : undefined)
  } catch (err) {
    await body.return(undefined).catch(() => {})
    throw err
  }
  onStart(served.length)
  let local = '-'
  let out: Writable
  let tmp: string | undefined
  /** A path: `out` is a stream this call opens (and so ends, or destroys on a failure). */
  const opened = typeof dest === 'string'
  if (typeof dest === 'string') {
    local = dest
    const existing = await stat(dest).catch(() => undefined)
    if (existing?.isDirectory() === true) local = join(dest, basename(result.path))
    const target = local === dest ? existing : await stat(local).catch(() => undefined)
    if (target !== undefined && !target.isFile() && !target.isDirectory()) {
      // a device or a pipe (/dev/null, a FIFO) is written in place, as cp does: a rename over it
      // would replace the device with a regular file
      out = createWriteStream(local, { flags: 'w' })
    } else {
      tmp = `${local}.dfs-partial-${process.pid}`
      out = createWriteStream(tmp, { mode: 0o644 })
    }
  } else {
    out = dest
  }
  // The stream this call opened reports its errors here, not as an 'error' event nobody listens to:
  // a failure destroys it, and a write still running then completes with ERR_STREAM_DESTROYED, which
  // would otherwise crash the process instead of the call failing with its own error.
  let streamError: Error | undefined
  if (opened) out.on('error', (err) => { streamError ??= err })
  try {
    await verifyInto(result.path, served, body, out, onBytes)
    if (opened) {
      out.end()
      await once(out, 'close')
      if (streamError !== undefined) throw streamError
      if (tmp != null) await rename(tmp, local)
    }
    return { ...result, offset: served.offset, length: served.length, local }
  } catch (err) {
    await body.return(undefined).catch(() => {})
    if (opened) out.destroy()
    if (tmp != null) await unlink(tmp).catch(() => {})
    throw err
  }
}

/** The bytes a node says it sends: [offset, offset + length), cut from `extents`, the first of which starts at `extentsOffset`. */
interface Served {
  offset: number
  length: number
  extentsOffset: number
  /** The first extents of the range (all of them, or the first GET_EXTENTS_MAX when `partial`). */
  extents: GetReply['extents']
  /** Whether more extents follow the listed ones (bytes the node checked alone). */
  partial: boolean
}

/**
 * The range `result` serves, checked against what was asked (`want`; undefined: the whole file) and
 * against its own extents. A node without range reads (no `offset` in its answer) serves the whole
 * file whatever was asked, which cannot be the range asked for; it is refused rather than read whole.
 */
function servedRange (result: GetReply, want: { offset: number, length?: number } | undefined): Served {
  const bad = (why: string): MalformedFrameError =>
    new MalformedFrameError(`the node answered fs.get of ${result.path} with ${why}`, { path: result.path, offset: result.offset, length: result.length })
  if (result.offset === undefined || result.length === undefined || result.extentsOffset === undefined) {
    if (want !== undefined) throw new FailedPreconditionError('the node does not serve range reads (it runs an older dfs)', { path: result.path })
    return { offset: 0, length: result.size, extentsOffset: 0, extents: result.extents, partial: false }
  }
  const { offset, length, extentsOffset, extents } = result
  const total = result.extentsTotal ?? extents.length
  if (!Number.isSafeInteger(total) || total < extents.length || (total > extents.length && extents.length === 0)) throw bad(`${extents.length} extents listed of ${total}`)
  const partial = total > extents.length
  if (want !== undefined) {
    const expected = Math.max(0, Math.min(want.length ?? Infinity, result.size - want.offset))
    if (offset !== want.offset || length !== expected) throw bad(`bytes ${offset}+${length}, not ${want.offset}+${expected}`)
  } else if (offset !== 0 || length !== result.size) {
    throw bad(`bytes ${offset}+${length} of ${result.size} for a whole-file read`)
  }
  // the listed extents, laid end to end from extentsOffset, must hold the whole range (its start,
  // when more follow them)
  let end = extentsOffset
  for (const e of extents) end += e.size
  if (length > 0 && (extentsOffset > offset || (partial ? end >= offset + length : end < offset + length) || extents.length === 0)) {
    throw bad(`extents that do not hold bytes ${offset}+${length}`)
  }
  if (length === 0 && extents.length > 0) throw bad('extents for an empty range')
  return { offset, length, extentsOffset, extents, partial }
}

/**
 * Writes the served bytes to `out` as they arrive, checking each listed extent the range covers whole
 * against its checksum, and that exactly `served.length` bytes arrive. The bytes after the listed
 * extents (a partial list: see GetResult.extents) were checked by the node only.
 */
async function verifyInto (path: string, served: Served, body: AsyncGenerator<Uint8Array>, out: Writable, onBytes: (n: number) => void): Promise<void> {
  const { extents } = served
  const stop = served.offset + served.length
  // the bytes of extent i the body carries, and whether that is all of it (then its checksum is checked)
  let start = served.extentsOffset
  const parts = extents.map((e) => {
    const from = Math.max(start, served.offset)
    const to = Math.min(start + e.size, stop)
    const part = { bytes: Math.max(0, to - from), whole: from === start && to === start + e.size }
    start += e.size
    return part
  })
  let index = 0
  let inExtent = 0
  let hash = createHash('sha256')
  let total = 0
  const finishExtent = (): void => {
    const e = extents[index]
    if (parts[index].whole) {
      const actual = `sha256:${hash.digest('hex')}`
      if (e.checksum !== actual) throw new CorruptExtentError(e.id, e.checksum, actual, { where: 'received by the client' })
      hash = createHash('sha256')
    }
    index += 1
    inExtent = 0
  }
  // extents with no bytes in the range (an empty file's) have nothing to wait for
  while (index < extents.length && parts[index].bytes === 0) finishExtent()
  for await (const chunk of body) {
    let offset = 0
    while (offset < chunk.byteLength) {
      if (index >= extents.length && served.partial) {
        // past the listed extents: counted, not checked here
        if (total + chunk.byteLength > served.length) throw new CorruptExtentError('(none)', 'end of range', 'more bytes', { where: 'received by the client' })
        break
      }
      if (index >= extents.length) throw new CorruptExtentError('(none)', 'end of range', 'more bytes', { where: 'received by the client' })
      const n = Math.min(chunk.byteLength - offset, parts[index].bytes - inExtent)
      if (parts[index].whole) hash.update(chunk.subarray(offset, offset + n))
      inExtent += n
      offset += n
      if (inExtent === parts[index].bytes) {
        finishExtent()
        while (index < extents.length && parts[index].bytes === 0) finishExtent()
      }
    }
    total += chunk.byteLength
    onBytes(chunk.byteLength)
    if (!out.write(chunk)) await drained(out)
  }
  if (index !== extents.length || total !== served.length) {
    throw new NodeUnreachableError(`the node ended ${path} after ${total} of ${served.length} bytes`, { path })
  }
}

/**
 * Resolves once `out` drains; rejects with its error if it fails or closes first (a full disk: the
 * stream errs and never drains, and waiting for 'drain' alone would hang the download).
 */
async function drained (out: Writable): Promise<void> {
  const failed = (): Error => out.errored ?? new Error('the output stream closed before the download ended')
  if (out.destroyed) throw failed()
  const stop = new AbortController()
  try {
    await Promise.race([
      once(out, 'drain', { signal: stop.signal }),
      once(out, 'close', { signal: stop.signal }).then(() => { throw failed() })
    ])
  } finally {
    stop.abort()
  }
}
