import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { randomBytes } from 'node:crypto'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { readStoredBytes, withClosedDb } from '@dfs/level-store'
import { Sandbox, waitFor, type NodeHandle } from './harness.js'
import { logLikeText } from '../support/log-text.js'

/**
 * Compression through three real nodes (RF 3): a log-like file and a random one are put and read
 * back byte for byte (whole and a range across an extent boundary); `cluster config set compression
 * off` makes the next put store raw. Then the nodes are stopped and each one's LevelDB is read
 * directly: the compressible file's extents are stored smaller than their logical size with a
 * codec in their header, the random file's and the `off` file's raw.
 */
const test = suite('e2e: compression')

const MiB = 1024 * 1024
const FAST = ['--heartbeat-ms', '250', '--failure-timeout-ms', '2000', '--metrics-listen', '127.0.0.1:0']
let sb: Sandbox
const nodes: NodeHandle[] = []
// seven pieces: more than a put keeps in flight, so the node decodes into buffers it used before
const text = Buffer.from(logLikeText(26 * MiB + 1234, 21))
const random = randomBytes(5 * MiB + 77)
const textOff = Buffer.from(logLikeText(1 * MiB, 22))

test.before(async () => {
  sb = await Sandbox.create()
})

test.after(async () => {
  for (const n of nodes) await n.stop().catch(() => {})
  await sb.cleanup()
})

interface StoredHeader { size: number, codec?: string, stored?: number, storedBytes: number }

/** The header of every extent in `ids` that a stopped node's store holds, with the length of its stored bytes. */
async function storedOn (dataDir: string, ids: string[]): Promise<Map<string, StoredHeader>> {
  const dir = join(dataDir, 'extents')
  const out = new Map<string, StoredHeader>()
  const headers = new Map<string, Record<string, unknown>>()
  await withClosedDb(dir, async (db) => {
    for (const id of ids) {
      const raw = await db.get(`h/${id}`)
      if (raw !== undefined) headers.set(id, JSON.parse(new TextDecoder().decode(raw)))
    }
  })
  for (const [id, header] of headers) {
    const bytes = await readStoredBytes(dir, id)
    assert.ok(bytes !== undefined, `the bytes of ${id} are stored`)
    out.set(id, { size: header.size as number, codec: header.codec as string | undefined, stored: header.stored as number | undefined, storedBytes: bytes.byteLength })
  }
  return out
}

/** Bytes of fs.put.encoded calls `n` received, as its /metrics says. */
async function received (n: NodeHandle): Promise<number> {
  const at = JSON.parse(await readFile(join(n.dataDir, 'node.json'), 'utf8')).metrics
  const text = await (await fetch(`http://${at}/metrics`)).text()
  const line = text.split('\n').find((l) => l.startsWith('dfs_rpc_received_bytes_total{method="fs.put.encoded"}'))
  return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(' ') + 1))
}

/**
 * Puts `bytes` through `via` (it cuts them into extents and decides their codec); returns the
 * extent ids and the bytes `via` received for the put.
 */
async function put (local: string, remote: string, bytes: Buffer, via: NodeHandle): Promise<string[] & { sent: number }> {
  await writeFile(local, bytes)
  const before = await received(via)
  const r = await sb.run(['fs', 'put', local, remote, '--json', '--node', via.addr])
  assert.is(r.code, 0, r.stderr)
  const sent = await received(via) - before
  const c = await sb.client(nodes[0])
  try {
    const st = await c.call('fs.stat', { path: remote })
    return Object.assign(st.extents.map((e: { id: string }) => e.id), { sent })
  } finally {
    await c.close()
  }
}

async function getBack (remote: string, want: Buffer, range?: [number, number]): Promise<void> {
  const out = join(sb.dir, `out-${remote.replaceAll('/', '_')}-${range?.join('-') ?? 'all'}`)
  const flags = range === undefined ? [] : ['--offset', String(range[0]), '--length', String(range[1])]
  const r = await sb.run(['fs', 'get', remote, out, ...flags, '--json', '--node', nodes[2].addr])
  assert.is(r.code, 0, r.stderr)
  const expected = range === undefined ? want : want.subarray(range[0], range[0] + range[1])
  assert.ok((await readFile(out)).equals(expected), `bytes of ${remote} ${range?.join('+') ?? ''}`)
}

test('three nodes store a compressible file compressed and a random one raw; both read back byte for byte', async () => {
  nodes.push(await sb.startNode({ args: ['--name', 'n1', ...FAST] }))
  const t = await sb.run(['cluster', 'token', 'create', '--uses', '5', '--json', '--node', nodes[0].addr])
  assert.is(t.code, 0, t.stderr)
  for (const name of ['n2', 'n3']) {
    nodes.push(await sb.startNode({ args: ['--name', name, '--peers', nodes[0].addr, '--join-token', t.json.token, ...FAST] }))
  }
  await waitFor(async () => {
    const r = await sb.run(['cluster', 'nodes', '--json', '--node', nodes[0].addr])
    const ns = r.json?.nodes ?? []
    return ns.length === 3 && ns.every((n: any) => n.health === 'healthy' && n.capacityBytes > 0) ? true : undefined
  }, 20_000, 'three healthy members that reported their capacity')

  const config = await sb.run(['cluster', 'config', '--json', '--node', nodes[0].addr])
  assert.is(config.json?.compression, 'zstd', config.stdout + config.stderr)

  const textIds = await put(join(sb.dir, 'log.txt'), '/c/log.txt', text, nodes[1])
  const randomIds = await put(join(sb.dir, 'random.bin'), '/c/random.bin', random, nodes[1])
  assert.is(textIds.length, 7)
  assert.is(randomIds.length, 2)
  assert.ok(textIds.sent > 0 && textIds.sent < 0.5 * text.byteLength, `n2 received ${textIds.sent} bytes of the ${text.byteLength}-byte log file`)
  assert.ok(randomIds.sent > random.byteLength, `n2 received ${randomIds.sent} bytes of the ${random.byteLength}-byte random file`)

  const off = await sb.run(['cluster', 'config', 'set', 'compression', 'off', '--json', '--node', nodes[0].addr])
  assert.is(off.code, 0, off.stderr)
  assert.is(off.json?.compression, 'off')
  // through the node that answered the change: it has applied it (the answer is read after the commit)
  const offIds = await put(join(sb.dir, 'off.txt'), '/c/off.txt', textOff, nodes[0])
  const bad = await sb.run(['cluster', 'config', 'set', 'compression', 'brotli', '--json', '--node', nodes[0].addr])
  assert.is(bad.json?.error?.name, 'InvalidArgument', bad.stdout + bad.stderr)

  await getBack('/c/log.txt', text)
  await getBack('/c/random.bin', random)
  await getBack('/c/off.txt', textOff)
  // across the boundary of the first two extents (4 MiB)
  await getBack('/c/log.txt', text, [4 * MiB - 1000, 5000])
  await getBack('/c/random.bin', random, [4 * MiB - 1000, 5000])

  for (const n of nodes) assert.is(await n.stop(), 0, n.stderr())
  const copies = new Map<string, number>()
  for (const n of nodes) {
    const stored = await storedOn(n.dataDir, [...textIds, ...randomIds, ...offIds])
    for (const [id, h] of stored) {
      copies.set(id, (copies.get(id) ?? 0) + 1)
      assert.is(h.storedBytes, h.stored ?? h.size, `${id}: the header says how many bytes are stored`)
      if (textIds.includes(id)) {
        assert.is(h.codec, 'zstd', `${id} of the log file is stored compressed`)
        assert.ok(h.storedBytes < 0.5 * h.size, `${id}: ${h.storedBytes} stored bytes of ${h.size}`)
      } else {
        assert.is(h.codec, undefined, `${id} is stored raw`)
        assert.is(h.storedBytes, h.size)
      }
    }
  }
  // a quorum (at least two of three) holds every extent
  for (const id of [...textIds, ...randomIds, ...offIds]) assert.ok((copies.get(id) ?? 0) >= 2, `${id}: ${copies.get(id) ?? 0} copies`)
})

test.run()
