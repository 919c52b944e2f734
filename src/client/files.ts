import { createHash } from 'node:crypto'
import { createReadStream, createWriteStream } from 'node:fs'
import { rename, stat, unlink } from 'node:fs/promises'
import { basename, join } from 'node:path'
import { once } from 'node:events'
import {
  CorruptExtentError, InvalidArgumentError, NodeUnreachableError, NotFoundError, type Consistency, type FsPutParams, type FsReadParams,
  type GetResult, type PutResult
} from '@dfs/api'
import { DATA_CHUNK_BYTES_MAX } from '../net/constants.js'
import type { DfsClient, FromAnyNode } from './index.js'
import type { Writable } from 'node:stream'

/** What `fs.get` answers, from a node of any version. */
export type GetReply = FromAnyNode<GetResult>

/** Streams a local file to `remote`; memory stays bounded by the flow-control window. */
export async function putFile (client: DfsClient, local: string, remote: string, onBytes: (n: number) => void = () => {}, options: { sync?: 'quorum' | 'all', tenant?: string } = {}): Promise<PutResult> {
  let info
  try {
    info = await stat(local)
  } catch (err) {
    if ((err as NodeJS.ErrnoException)?.code === 'ENOENT') throw new NotFoundError(`local file ${local} does not exist`, { path: local })
    throw err
  }
  if (!info.isFile()) throw new InvalidArgumentError(`${local} is not a regular file`, { path: local })
  async function * body (): AsyncGenerator<Uint8Array> {
    for await (const chunk of createReadStream(local, { highWaterMark: DATA_CHUNK_BYTES_MAX })) {
      onBytes((chunk as Buffer).byteLength)
      yield chunk as Buffer
    }
  }
  // the size lets a node refuse a put past a tenant's quota before any byte is sent
  const params: FsPutParams = { path: remote, size: info.size, ...(options.sync != null ? { sync: options.sync } : {}), ...(options.tenant != null ? { tenant: options.tenant } : {}) }
  return await client.rpc.upload('fs.put', params, body(), { timeoutMs: client.timeoutMs })
}

/**
 * Reads `remote` into `dest` (a path, a directory, or a writable such as stdout). Each extent is
 * checked against the checksum metadata holds for it as it arrives; a file destination is written
 * to a temporary name and renamed only when every byte checked out. `consistency: 'stale'` lets the
 * node answer from its applied metadata (also without a quorum); the reply says what it served.
 */
export async function getFile (client: DfsClient, remote: string, dest: string | Writable, onStart: (size: number) => void = () => {}, onBytes: (n: number) => void = () => {},
  options: { consistency?: Consistency, tenant?: string } = {}): Promise<GetReply & { local: string }> {
  const params: FsReadParams = { path: remote, ...(options.consistency != null ? { consistency: options.consistency } : {}), ...(options.tenant != null ? { tenant: options.tenant } : {}) }
  const { result, body }: { result: GetReply, body: AsyncGenerator<Uint8Array> } = await client.rpc.download('fs.get', params, { timeoutMs: client.timeoutMs })
  onStart(result.size)
  let local = '-'
  let out: Writable
  let tmp: string | undefined
  if (typeof dest === 'string') {
    local = dest
    const existing = await stat(dest).catch(() => undefined)
    if (existing?.isDirectory() === true) local = join(dest, basename(result.path))
    tmp = `${local}.dfs-partial-${process.pid}`
    out = createWriteStream(tmp, { mode: 0o644 })
  } else {
    out = dest
  }
  try {
    await verifyInto(result, body, out, onBytes)
    if (tmp != null) {
      out.end()
      await once(out, 'close')
      await rename(tmp, local)
    }
    return { ...result, local }
  } catch (err) {
    await body.return(undefined).catch(() => {})
    if (tmp != null) {
      out.destroy()
      await unlink(tmp).catch(() => {})
    }
    throw err
  }
}

async function verifyInto (result: GetReply, body: AsyncGenerator<Uint8Array>, out: Writable, onBytes: (n: number) => void): Promise<void> {
  const extents = result.extents
  let index = 0
  let inExtent = 0
  let hash = createHash('sha256')
  let total = 0
  const finishExtent = (): void => {
    const e = extents[index]
    const actual = `sha256:${hash.digest('hex')}`
    if (e.checksum !== actual) throw new CorruptExtentError(e.id, e.checksum, actual, { where: 'received by the client' })
    index += 1
    inExtent = 0
    hash = createHash('sha256')
  }
  // zero-length extents (an empty file) have nothing to wait for
  while (index < extents.length && extents[index].size === 0) finishExtent()
  for await (const chunk of body) {
    let offset = 0
    while (offset < chunk.byteLength) {
      if (index >= extents.length) throw new CorruptExtentError('(none)', 'end of file', 'more bytes', { where: 'received by the client' })
      const n = Math.min(chunk.byteLength - offset, extents[index].size - inExtent)
      hash.update(chunk.subarray(offset, offset + n))
      inExtent += n
      offset += n
      if (inExtent === extents[index].size) {
        finishExtent()
        while (index < extents.length && extents[index].size === 0) finishExtent()
      }
    }
    total += chunk.byteLength
    onBytes(chunk.byteLength)
    if (!out.write(chunk)) await once(out, 'drain')
  }
  if (index !== extents.length || total !== result.size) {
    throw new NodeUnreachableError(`the node ended ${result.path} after ${total} of ${result.size} bytes`, { path: result.path })
  }
}
