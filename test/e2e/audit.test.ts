import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { crc32 } from 'node:zlib'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { decode, encode } from 'cborg'
import { RaftLogDb } from '../../plugins/raft-metadata/src/raft/index.js'
import { DfsClient } from '../../src/client/index.js'
import { Sandbox, listenAddress, waitFor, type NodeHandle, type RunResult } from './harness.js'

/**
 * The audit log through real processes: what operations and refusals it records, the filters of
 * `dfs cluster audit`, aggregation of a flood of refusals, and `--verify` catching an entry changed
 * on a stopped node's disk (in the metadata snapshot, where entries keep their stored hashes).
 */
const test = suite('e2e: audit log')
// snapshots every few operations, so the audit entries soon live in a snapshot on every node
const ARGS = ['--metadata-snapshot-every', '5']

interface Entry {
  seq: number
  time: string
  user: string
  role: string | null
  tenant: string | null
  operation: string
  resource: string
  success: boolean
  error: string | null
  count: number
  node: string
  hash: string
}

let sb: Sandbox
const nodes: NodeHandle[] = []
let admin = ''
let stranger = ''
let strangerKey = ''

test.before(async () => {
  sb = await Sandbox.create()
  strangerKey = await sb.identity('stranger')
  admin = (await sb.run(['identity', 'show', '--json'])).json.id
  stranger = (await sb.run(['identity', 'show', '--json'], { env: { DFS_IDENTITY: strangerKey } })).json.id
})
test.after(async () => {
  for (const n of nodes) await n.stop()
  await sb.cleanup()
})

async function audit (args: string[], node: NodeHandle = nodes[0]): Promise<RunResult> {
  return await sb.run(['cluster', 'audit', '--json', '--node', node.addr, ...args])
}

async function entries (args: string[], node?: NodeHandle): Promise<Entry[]> {
  const r = await audit(args, node)
  assert.is(r.code, 0, r.stderr)
  return r.json.entries as Entry[]
}

test('a three-node cluster records puts, removes, settings and refusals, with who, what and the outcome', async () => {
  nodes.push(await sb.startNode({ args: ['--name', 'n1', ...ARGS] }))
  const t = await sb.run(['cluster', 'token', 'create', '--uses', '2', '--json', '--node', nodes[0].addr])
  assert.is(t.code, 0, t.stderr)
  for (const name of ['n2', 'n3']) {
    nodes.push(await sb.startNode({ args: ['--name', name, '--peers', nodes[0].addr, '--join-token', t.json.token, ...ARGS] }))
  }
  await waitFor(async () => {
    const r = await sb.run(['cluster', 'shards', '--json', '--node', nodes[0].addr])
    return r.code === 0 && r.json.groups.every((g: any) => g.voters.length === 3) ? true : undefined
  }, 60_000, 'three voters in every group')

  const local = join(sb.dir, 'a.txt')
  await writeFile(local, 'hello audit')
  await waitFor(async () => (await sb.run(['fs', 'put', local, '/docs/a.txt', '--node', nodes[0].addr])).code === 0 ? true : undefined,
    60_000, 'a put')
  const rm = await sb.run(['fs', 'rm', '/docs/a.txt', '--node', nodes[0].addr])
  assert.is(rm.code, 0, rm.stderr)
  const set = await sb.run(['cluster', 'config', 'set', 'imbalance-threshold', '0.6', '--node', nodes[0].addr])
  assert.is(set.code, 0, set.stderr)
  const refused = await sb.run(['cluster', 'config', 'set', 'fill-limit', '0.5', '--json', '--node', nodes[0].addr], { env: { DFS_IDENTITY: strangerKey } })
  assert.is.not(refused.code, 0)
  assert.is(refused.json?.error?.name, 'PermissionDenied', refused.stdout + refused.stderr)

  // written within a fraction of a second, through Raft: any node answers with the same entries
  const all = await waitFor(async () => {
    const es = await entries(['--limit', '1000'], nodes[1])
    return es.some((e) => e.user === stranger) ? es : undefined
  }, 30_000, 'the refusal in the audit log')
  // the CLI sends a file as fs.put.encoded (see putFile)
  const put = all.find((e) => e.operation === 'fs.put.encoded' && e.resource === '/docs/a.txt' && e.success)
  assert.ok(put, JSON.stringify(all))
  assert.equal([put.user, put.role, put.tenant, put.error, put.count, put.node], [admin, 'admin', null, null, 1, nodes[0].id])
  assert.match(put.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/)
  assert.match(put.hash, /^[0-9a-f]{64}$/)
  const removed = all.find((e) => e.operation === 'fs.rm')
  assert.equal([removed?.resource, removed?.success, removed?.user], ['/docs/a.txt', true, admin])
  const setting = all.find((e) => e.operation === 'cluster.config.set' && e.success)
  assert.is(setting?.resource, 'imbalanceThreshold=0.6')
  const denied = all.find((e) => e.user === stranger)
  assert.equal([denied?.operation, denied?.success, denied?.error, denied?.role, denied?.resource], ['cluster.config.set', false, 'PermissionDenied', null, ''])
  // joins are mutating calls too
  assert.is(all.filter((e) => e.operation === 'cluster.join' && e.success).length, 2)
  // newest last, seqs increasing
  assert.ok(all.every((e, i) => i === 0 || e.seq > all[i - 1].seq))
  assert.ok(all.indexOf(put) < all.indexOf(removed as Entry) && all.indexOf(removed as Entry) < all.indexOf(denied as Entry))
  // reads are not recorded
  assert.not.ok(all.some((e) => e.operation === 'cluster.audit' || e.operation === 'cluster.shards'))

  const failed = await entries(['--failed'])
  assert.ok(failed.length > 0 && failed.every((e) => !e.success))
  assert.ok(failed.some((e) => e.user === stranger))
  const mine = await entries(['--user', admin])
  assert.ok(mine.length > 0 && mine.every((e) => e.user === admin))
  assert.ok(mine.some((e) => e.operation === 'fs.put.encoded'))
  const recent = await entries(['--since', '10m', '--limit', '2'])
  assert.is(recent.length, 2)
  // the two newest when it answered (the log may have grown since `all` was read)
  const after = await entries(['--limit', '1000'])
  assert.equal(recent.map((e) => e.seq), after.filter((e) => e.seq <= recent[1].seq).slice(-2).map((e) => e.seq), JSON.stringify(after.slice(-3)))
  assert.equal(await entries(['--since', new Date(Date.now() + 3_600_000).toISOString()]), [])

  const bad = await audit(['--since', 'yesterday'])
  assert.is.not(bad.code, 0)
  assert.is(bad.json?.error?.name, 'InvalidArgument')

  // the stranger may not read the log
  const peek = await sb.run(['cluster', 'audit', '--json', '--node', nodes[0].addr], { env: { DFS_IDENTITY: strangerKey } })
  assert.is(peek.json?.error?.name, 'PermissionDenied')

  for (const n of nodes) {
    const v = await audit(['--verify'], n)
    assert.is(v.code, 0, v.stderr)
    assert.is(v.json.verified, true)
    assert.ok(v.json.entries >= all.length)
    assert.match(v.json.head, /^[0-9a-f]{64}$/)
  }
})

test('a flood of refusals from one identity is a handful of entries whose counts add up', async () => {
  const calls = 2000
  let denied = 0
  let made = 0
  const open = async (): Promise<DfsClient> => await DfsClient.open({ node: nodes[0].addr, identityPath: strangerKey, dataDir: sb.dir })
  let client = await open()
  // a stranger's connection lives 10 s and carries at most 4 calls at once (src/net/admission.ts): a
  // few callers, and a new connection when the node closes the old one
  let reopening: Promise<void> | undefined
  let reopened = 0
  const reopen = async (): Promise<void> => {
    reopening ??= (async () => {
      if (++reopened > 30) throw new Error(`reconnected ${reopened} times`)
      const old = client
      await old.close().catch(() => {})
      await new Promise((resolve) => setTimeout(resolve, 200))
      client = await open()
    })().finally(() => { reopening = undefined })
    await reopening
  }
  try {
    const worker = async (): Promise<void> => {
      while (made < calls) {
        made++
        try {
          await client.call('fs.rm', { path: '/docs/x' })
        } catch (err) {
          if ((err as Error).name === 'PermissionDenied') { denied++; continue }
          await reopen()
        }
      }
    }
    await Promise.all(Array.from({ length: 3 }, worker))
  } finally {
    await client.close()
  }
  assert.ok(denied >= calls - 100, `${denied} of ${calls} refused with PermissionDenied`)

  const flood = await waitFor(async () => {
    const es = (await entries(['--user', stranger, '--limit', '10000'])).filter((e) => e.operation === 'fs.rm')
    return es.reduce((n, e) => n + e.count, 0) === denied ? es : undefined
  }, 30_000, `${denied} refusals counted in the audit log`)
  assert.ok(flood.every((e) => e.error === 'PermissionDenied' && !e.success && e.role === null))
  assert.ok(flood.length <= denied / 10, `${flood.length} entries for ${denied} refusals`)
})

/** A value of the Raft log: CBOR followed by a big-endian CRC-32 of it (plugins/raft-metadata level-storage.ts). */
function unseal (bytes: Uint8Array): Record<string, any> {
  const body = bytes.subarray(0, bytes.byteLength - 4)
  const crc = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(bytes.byteLength - 4, false)
  assert.is(crc, crc32(body) >>> 0, 'the stored record is intact before the change')
  return decode(body) as Record<string, any>
}
function seal (value: unknown): Uint8Array {
  const body = encode(value)
  const out = new Uint8Array(body.byteLength + 4)
  out.set(body, 0)
  new DataView(out.buffer).setUint32(body.byteLength, crc32(body) >>> 0, false)
  return out
}

test('an entry changed on a stopped node\'s disk breaks the chain there, and only there', async () => {
  const victim = nodes[2]
  assert.is(await victim.stop(), 0, victim.stderr())
  // as an attacker with the disk would: rewrite one entry in the system group's snapshot, and the record's checksum
  // the node's Raft log (plugins/raft-metadata wal-log-store.ts), opened as the node would
  const db = await RaftLogDb.open(join(victim.dataDir, 'metadata', 'raft-log'))
  let tampered: number
  try {
    const snap = await db.store.get('g0/m/snap')
    if (snap === undefined) throw new Error('no snapshot of the system group on the stopped node')
    const record = unseal(snap)
    const state = decode(record.d as Uint8Array) as Record<string, any>
    const stored = state.audit.entries as Entry[]
    assert.ok(stored.length > 2, `the snapshot holds audit entries (${stored.length})`)
    // the newest entry the snapshot holds: entries applied after it (replayed at restart) cannot trim it away
    const target = stored[stored.length - 1]
    tampered = target.seq
    // make it look like somebody else did it
    target.user = target.user === admin ? stranger : admin
    record.d = encode(state)
    await db.write([{ type: 'put', key: 'g0/m/snap', value: seal(record) }], true)
  } finally {
    await db.close()
  }
  nodes[2] = await sb.startNode({ dataDir: victim.dataDir, listen: listenAddress(victim), args: ['--name', 'n3', ...ARGS] })

  const broken = await audit(['--verify'], nodes[2])
  assert.is.not(broken.code, 0, broken.stdout)
  assert.is(broken.json?.error?.name, 'AuditChainBroken', broken.stdout + broken.stderr)
  assert.is(broken.json.error.details.seq, tampered)
  assert.ok(broken.stderr.includes(`audit entry ${tampered}`), broken.stderr)
  for (const n of nodes.slice(0, 2)) {
    const v = await audit(['--verify'], n)
    assert.is(v.code, 0, v.stderr)
    assert.is(v.json.verified, true)
  }
})

test('retention keeps the newest entries, and the trimmed chain verifies from its checkpoint', async () => {
  const bad = await sb.run(['cluster', 'config', 'set', 'audit-retention', '50', '--json', '--node', nodes[0].addr])
  assert.is(bad.json?.error?.name, 'InvalidArgument', bad.stdout)
  const set = await sb.run(['cluster', 'config', 'set', 'audit-retention', '100', '--json', '--node', nodes[0].addr])
  assert.is(set.code, 0, set.stderr)
  assert.is(set.json.auditRetention, 100)
  // an admin's failures are each an entry
  const client = await sb.client(nodes[0])
  try {
    for (let i = 0; i < 150; i++) {
      await client.call('fs.rm', { path: `/missing/${i}` }).then(() => assert.unreachable(), (err: Error) => { assert.is(err.name, 'NotFound') })
    }
  } finally {
    await client.close()
  }
  const kept = await waitFor(async () => {
    const es = await entries(['--limit', '1000'])
    return es.some((e) => e.resource === '/missing/149') ? es : undefined
  }, 30_000, 'the last failure in the log')
  assert.is(kept.length, 100)
  assert.ok(kept[0].seq > 1, `the oldest kept is ${kept[0].seq}`)
  assert.is(kept[99].seq - kept[0].seq, 99)
  // (the third node's copy was changed on disk by the test before)
  for (const n of nodes.slice(0, 2)) {
    const v = await audit(['--verify'], n)
    assert.is(v.code, 0, v.stderr)
    assert.equal([v.json.verified, v.json.entries], [true, 100])
  }
})

test.run()
