import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { createHash, randomBytes } from 'node:crypto'
import { execFileSync } from 'node:child_process'
import { constants, lstatSync, mkdtempSync, openSync, readdirSync, rmSync } from 'node:fs'
import { Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { FailedPreconditionError, type ExtentRecord } from '@dfs/api'
import { STAT_RESTARTS_MAX, getFile, statFile } from '../../src/client/files.js'
import type { DfsClient } from '../../src/client/index.js'

/** The client side of bounded answers: getFile with a partial extent list, statFile over pages. */
const test = suite('client/files')

const checksum = (b: Uint8Array): string => `sha256:${createHash('sha256').update(b).digest('hex')}`
const uuid = (n: number): string => `00000000-0000-4000-8000-${n.toString(16).padStart(12, '0')}`

/** A sink that keeps what it is given. */
function sink (): { out: Writable, bytes: () => Buffer } {
  const parts: Buffer[] = []
  const out = new Writable({ write (chunk: Buffer, _e, cb) { parts.push(chunk); cb() } })
  return { out, bytes: () => Buffer.concat(parts) }
}

/** A client whose node answers fs.get with `listed` of the extents of `extents` and sends `body`. */
function getClient (extents: Uint8Array[], listed: number, body: Uint8Array[] = extents): DfsClient {
  const size = extents.reduce((s, e) => s + e.byteLength, 0)
  const result = {
    path: '/f', size, mtimeMs: 1, version: 1, offset: 0, length: size, extentsOffset: 0, extentsTotal: extents.length,
    extents: extents.slice(0, listed).map((e, i) => ({ id: uuid(i), size: e.byteLength, checksum: checksum(e) })),
    consistency: 'linearizable'
  }
  async function * stream (): AsyncGenerator<Uint8Array> { yield * body }
  return { timeoutMs: 1000, rpc: { download: async () => ({ result, body: stream() }) } } as unknown as DfsClient
}

test('getFile checks the listed extents and takes the rest (checked by the node) when the answer lists only the first ones', async () => {
  const extents = Array.from({ length: 5 }, () => randomBytes(100))
  const s = sink()
  const r = await getFile(getClient(extents, 2), '/f', s.out)
  assert.is(r.length, 500)
  assert.ok(s.bytes().equals(Buffer.concat(extents)))
  // a bad byte in a listed extent is caught
  const bad = extents.map((e) => Buffer.from(e))
  bad[1][7] ^= 1
  await getFile(getClient(extents, 2, bad), '/f', sink().out).then(() => assert.unreachable(), (err) => { assert.is(err.name, 'CorruptExtent') })
  // too few or too many bytes are refused
  await getFile(getClient(extents, 2, extents.slice(0, 4)), '/f', sink().out).then(() => assert.unreachable(), (err) => { assert.is(err.name, 'NodeUnreachable') })
  await getFile(getClient(extents, 2, [...extents, Buffer.alloc(1)]), '/f', sink().out).then(() => assert.unreachable(), (err) => { assert.is(err.name, 'CorruptExtent') })
})

test('getFile refuses an answer that lists more extents than it says overlap, or none of many', async () => {
  const extents = Array.from({ length: 3 }, () => randomBytes(10))
  const lying = getClient(extents, 3) as any
  const download = lying.rpc.download
  lying.rpc.download = async () => { const d = await download(); d.result.extentsTotal = 2; return d }
  await getFile(lying, '/f', sink().out).then(() => assert.unreachable(), (err) => { assert.is(err.name, 'MalformedFrame') })
  const none = getClient(extents, 0)
  await getFile(none, '/f', sink().out).then(() => assert.unreachable(), (err) => { assert.is(err.name, 'MalformedFrame') })
})

/** A client whose node answers fs.stat in pages of `page` over `versions` (one per call to `bump`). */
function statClient (count: number, page: number, changesAt: number[] = []): { client: DfsClient, calls: () => number } {
  let version = 1
  let calls = 0
  const all = Array.from({ length: count }, (_, i): ExtentRecord => ({ id: uuid(i), size: 1, checksum: 'sha256:00', replicas: ['n1'] }))
  const call = async (_m: string, p: { extentsFrom?: number, version?: number }): Promise<unknown> => {
    calls++
    if (changesAt.includes(calls)) version++
    if (p.version !== undefined && p.version !== version) throw new FailedPreconditionError('changed', { version })
    const from = p.extentsFrom ?? 0
    return { path: '/f', size: count, version, mtimeMs: 1, extents: all.slice(from, from + page), extentsTotal: count, consistency: 'linearizable' }
  }
  return { client: { call } as unknown as DfsClient, calls: () => calls }
}

test('statFile reads every page of one version, starting over when the file changes, a bounded number of times', async () => {
  const plain = statClient(2500, 1000)
  const s = await statFile(plain.client, '/f')
  assert.equal(s.extents.map((e) => e.id), Array.from({ length: 2500 }, (_, i) => uuid(i)))
  assert.is(plain.calls(), 3)
  const changed = statClient(2500, 1000, [2])
  assert.is((await statFile(changed.client, '/f')).version, 2)
  assert.is(changed.calls(), 5, 'the second page saw a new version: it started over')
  const busy = statClient(2500, 1000, Array.from({ length: 100 }, (_, i) => 2 * i + 2))
  await statFile(busy.client, '/f').then(() => assert.unreachable(), (err) => { assert.is(err.name, 'FailedPrecondition') })
  assert.is(busy.calls(), 2 * (STAT_RESTARTS_MAX + 1))
})

test('a download that fails while a write to the file is in flight rejects with its error, leaves no file and does not crash', async () => {
  // (the CLI died of an unhandled 'error' event: the failure destroyed the file stream while fs.write
  // was still running, and its completion reported the destroyed stream)
  const dir = mkdtempSync(join(tmpdir(), 'dfs-get-fail-'))
  try {
    const extents = [randomBytes(1000), randomBytes(1000)]
    const client = getClient(extents, 2)
    const failure = Object.assign(new Error('extent 2 is corrupt on every replica'), { name: 'CorruptExtent' })
    async function * failing (): AsyncGenerator<Uint8Array> {
      // the file is open by now; the first write goes to the pool and the failure follows at once
      await new Promise((resolve) => setTimeout(resolve, 50))
      yield extents[0]
      throw failure
    }
    const download = client.rpc.download
    client.rpc.download = (async (...args: Parameters<typeof download>) => ({ ...await download(...args), body: failing() }))
    for (let i = 0; i < 20; i++) {
      await getFile(client, '/f', join(dir, 'out')).then(() => assert.unreachable(), (err) => { assert.is(err, failure) })
    }
    // a stream error that came late is not thrown later either
    await new Promise((resolve) => setTimeout(resolve, 100))
    assert.equal(readdirSync(dir), [])
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})

test('an output that fails between writes fails the download with its error instead of waiting for a drain', async () => {
  const extents = [randomBytes(1000), randomBytes(1000)]
  const client = getClient(extents, 2)
  const full = Object.assign(new Error('no space left on device'), { code: 'ENOSPC' })
  // the first write is accepted (below the high-water mark) and fails a moment later, as a full disk
  // does; the second then meets a destroyed stream that will never drain
  const out = new Writable({ highWaterMark: 1500, write (_chunk, _e, cb) { setTimeout(() => { cb(full) }, 5) } })
  out.on('error', () => {})
  async function * slow (): AsyncGenerator<Uint8Array> {
    yield extents[0]
    await new Promise((resolve) => setTimeout(resolve, 50))
    yield extents[1]
  }
  const download = client.rpc.download
  client.rpc.download = async (...args: Parameters<typeof download>) => ({ ...await download(...args), body: slow() })
  let timer: ReturnType<typeof setTimeout> | undefined
  const hung = new Promise((_resolve, reject) => { timer = setTimeout(() => { reject(new Error('getFile still waits after 5 s')) }, 5000) })
  try {
    await Promise.race([getFile(client, '/f', out), hung]).then(() => assert.unreachable(), (err) => { assert.is(err, full) })
  } finally {
    clearTimeout(timer)
  }
})

test('getFile writes into a FIFO in place: no temporary file beside it, and it stays a FIFO', async () => {
  // (as root, a rename over /dev/null replaced the device with a regular file)
  const dir = mkdtempSync(join(tmpdir(), 'dfs-get-fifo-'))
  try {
    const fifo = join(dir, 'pipe')
    execFileSync('mkfifo', [fifo])
    const extents = Array.from({ length: 3 }, () => randomBytes(70_000))
    // the reading end opened without blocking (no writer yet), so a getFile that never opens the FIFO
    // fails this test on the deadline rather than hanging it
    const reader = new Socket({ fd: openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK), readable: true, writable: false })
    const parts: Buffer[] = []
    reader.on('data', (chunk: Buffer) => { parts.push(chunk) })
    const ended = new Promise<void>((resolve, reject) => {
      reader.once('end', resolve)
      setTimeout(() => { reject(new Error('nothing closed the FIFO in 10 s')) }, 10_000).unref()
    })
    const r = await getFile(getClient(extents, 3), '/f', fifo)
    assert.is(r.local, fifo)
    try { await ended } finally { reader.destroy() }
    assert.ok(Buffer.concat(parts).equals(Buffer.concat(extents)))
    assert.ok(lstatSync(fifo).isFIFO())
    assert.equal(readdirSync(dir), ['pipe'])
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})

test.run()
