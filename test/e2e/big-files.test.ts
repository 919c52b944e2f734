import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { createCipheriv, createHash } from 'node:crypto'
import { createReadStream, createWriteStream } from 'node:fs'
import { open } from 'node:fs/promises'
import { once } from 'node:events'
import { join } from 'node:path'
import { STAGE_BATCH_MAX } from '@dfs/api'
import { countExtents } from './extents-on-disk.js'
import { Sandbox, waitFor, type NodeHandle } from './harness.js'

/**
 * A file with tens of thousands of extents through a three-node cluster of real processes (64 KiB
 * extents): `fs put` commits it through staged batches, `fs stat --json` lists every extent (paged),
 * `fs get` reads it back identical (its answer lists a bounded number of extents), a range near the
 * end reads back, `fs rm` frees every copy, and a put that fails after staging frees its copies at
 * once (no node keeps any after the release grace, long before any orphan sweep).
 *
 * Size: DFS_BIG_FILE_BYTES, else 2 GiB (32,768 extents) with DFS_SOAK=1, else 160 MiB (2,560
 * extents: still two stages and three stat pages).
 */
const test = suite('e2e: big files')
const EXTENT = 64 * 1024
const SIZE = Number(process.env.DFS_BIG_FILE_BYTES ?? (process.env.DFS_SOAK === '1' ? 2 * 1024 ** 3 : 160 * 1024 ** 2))
/** Replicas delete the copies of a freed extent after this grace (given to the nodes: --release-grace-ms). */
const RELEASE_GRACE_MS = 2000
const FAST = ['--heartbeat-ms', '200', '--failure-timeout-ms', '3000', '--extent-size', String(EXTENT), '--release-grace-ms', String(RELEASE_GRACE_MS)]
/** Deadline of one command that moves the whole file. */
const BIG_COMMAND_MS = 20 * 60_000

let sb: Sandbox
const nodes: NodeHandle[] = []
let local = ''
let digest = ''
let freedAtMs = 0

test.before(async () => { sb = await Sandbox.create() })
test.after(async () => {
  for (const n of nodes) await n.stop()
  await sb.cleanup()
})

async function ok (args: string[], via = 0, timeoutMs?: number): Promise<any> {
  const r = await sb.run([...args, '--json', '--node', nodes[via].addr], timeoutMs !== undefined ? { timeoutMs } : {})
  assert.is(r.code, 0, `${args.join(' ')}: ${r.stderr}`)
  return r.json
}

/** `bytes` bytes of a seeded stream (AES-128-CTR of zeros), in chunks of at most 8 MiB. */
async function * seeded (seed: number, bytes: number): AsyncGenerator<Buffer> {
  const key = createHash('sha256').update(`dfs-big-files-${seed}`).digest().subarray(0, 16)
  const cipher = createCipheriv('aes-128-ctr', key, Buffer.alloc(16))
  const zeros = Buffer.alloc(8 * 1024 * 1024)
  for (let left = bytes; left > 0; left -= zeros.length) yield cipher.update(zeros.subarray(0, Math.min(left, zeros.length)))
}

async function sha256OfFile (path: string): Promise<string> {
  const hash = createHash('sha256')
  for await (const chunk of createReadStream(path, { highWaterMark: 4 * 1024 * 1024 })) hash.update(chunk as Buffer)
  return hash.digest('hex')
}

test('a cluster of three voters with 64 KiB extents', async () => {
  nodes.push(await sb.startNode({ args: ['--name', 'n1', ...FAST] }))
  const t = await ok(['cluster', 'token', 'create', '--uses', '2'])
  for (const name of ['n2', 'n3']) nodes.push(await sb.startNode({ args: ['--name', name, '--peers', nodes[0].addr, '--join-token', t.token, ...FAST] }))
  await waitFor(async () => {
    const ns = (await sb.run(['cluster', 'nodes', '--json', '--node', nodes[0].addr])).json?.nodes ?? []
    return ns.length === 3 && ns.every((n: any) => n.voter && n.health === 'healthy') ? true : undefined
  }, 30_000, 'three healthy voters')
})

test(`a ${SIZE}-byte file (${Math.ceil(SIZE / EXTENT)} extents) puts, stats with every extent, and reads back identical`, async () => {
  local = join(sb.dir, 'big.in')
  const hash = createHash('sha256')
  const out = createWriteStream(local)
  for await (const chunk of seeded(1, SIZE)) {
    hash.update(chunk)
    if (!out.write(chunk)) await once(out, 'drain')
  }
  out.end()
  await once(out, 'close')
  digest = hash.digest('hex')
  const count = Math.ceil(SIZE / EXTENT)
  assert.ok(count > 2 * STAGE_BATCH_MAX, 'the file takes several stages')

  let t = Date.now()
  const put = await ok(['fs', 'put', local, '/big/f.bin'], 0, BIG_COMMAND_MS)
  console.log(`put ${SIZE} bytes: ${Date.now() - t} ms`)
  assert.equal(put, { path: '/big/f.bin', size: SIZE, extents: count })

  t = Date.now()
  const stat = await ok(['fs', 'stat', '/big/f.bin'], 1, BIG_COMMAND_MS)
  console.log(`stat of ${count} extents: ${Date.now() - t} ms`)
  assert.is(stat.size, SIZE)
  assert.is(stat.extents.length, count)
  assert.is(new Set(stat.extents.map((e: any) => e.id)).size, count, 'every extent once')
  assert.is(stat.extents.reduce((s: number, e: any) => s + e.size, 0), SIZE)
  assert.ok(stat.extents.every((e: any) => e.replicas.length === 3))

  t = Date.now()
  const back = join(sb.dir, 'big.out')
  await ok(['fs', 'get', '/big/f.bin', back], 2, BIG_COMMAND_MS)
  console.log(`get ${SIZE} bytes: ${Date.now() - t} ms`)
  assert.is(await sha256OfFile(back), digest, 'reads back identical')
})

test('a range near the end reads back identical', async () => {
  const offset = SIZE - 3 * EXTENT - 1234
  const length = 2 * EXTENT + 99
  const back = join(sb.dir, 'range.out')
  await ok(['fs', 'get', '/big/f.bin', back, '--offset', String(offset), '--length', String(length)], 1)
  const fh = await open(local, 'r')
  const want = Buffer.alloc(length)
  await fh.read(want, 0, length, offset)
  await fh.close()
  const fb = await open(back, 'r')
  const got = Buffer.alloc(length + 1)
  const { bytesRead } = await fb.read(got, 0, length + 1, 0)
  await fb.close()
  assert.is(bytesRead, length)
  assert.ok(got.subarray(0, length).equals(want))
})

test('a put that fails after staging frees its copies at once; rm frees the big file\'s', async () => {
  // a put of more than two batches whose client goes away: the node has staged at least one batch
  // (it reads on only after the batch is committed), then drops the stage and deletes the copies
  const c = await sb.client(nodes[0], 120_000)
  try {
    async function * failing (): AsyncGenerator<Uint8Array> {
      yield * seeded(2, (2 * STAGE_BATCH_MAX + 50) * EXTENT)
      throw new Error('the client went away')
    }
    await c.rpc.upload('fs.put', { path: '/big/failed.bin' }, failing(), { timeoutMs: 120_000 }).then(() => assert.unreachable(), () => {})
  } finally {
    await c.close()
  }
  const gone = (await sb.run(['fs', 'stat', '/big/failed.bin', '--json', '--node', nodes[0].addr])).json?.error?.name
  assert.is(gone, 'NotFound')
  const rm = await ok(['fs', 'rm', '/big/f.bin'], 1, BIG_COMMAND_MS)
  assert.is(rm.freed, Math.ceil(SIZE / EXTENT))
  freedAtMs = Date.now()
})

test('after the release grace every node deletes every copy; none is left on any disk', async () => {
  // the copies go after the grace, a bounded number of deletes at a time: wait until every node
  // reports no stored bytes (its heartbeat), then look at the disks themselves
  await waitFor(async () => {
    if (Date.now() < freedAtMs + RELEASE_GRACE_MS) return undefined
    const ns = (await sb.run(['cluster', 'nodes', '--json', '--node', nodes[0].addr])).json?.nodes ?? []
    return ns.length === 3 && ns.every((n: any) => n.usedBytes === 0) ? true : undefined
  }, RELEASE_GRACE_MS + Math.max(120_000, Math.ceil(SIZE / EXTENT) * 20), 'every node to hold no extent')
  for (const n of nodes) await n.stop()
  for (const n of nodes) assert.is(await countExtents(join(n.dataDir, 'extents')), 0, `extents on ${n.id}`)
})

test.run()
