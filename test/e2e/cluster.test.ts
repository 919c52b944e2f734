import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { randomBytes } from 'node:crypto'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { INLINE_FILE_BYTES_MAX } from '@dfs/api'
import { readExtent } from './extents-on-disk.js'
import { Sandbox, waitFor, type NodeHandle } from './harness.js'

/**
 * Three `dfs node start` processes form one cluster by join token; kill -9 of the metadata leader
 * leaves the others electing a new one and serving writes within seconds, and the killed node
 * catches up when it comes back.
 */
const test = suite('e2e: a three-node cluster')
// short heartbeats; frequent metadata snapshots so a node that missed writes catches up by snapshot
const FAST = ['--heartbeat-ms', '200', '--failure-timeout-ms', '1500', '--metadata-snapshot-every', '20']

let sb: Sandbox
const nodes = new Map<string, NodeHandle>()
let token: string

test.before(async () => { sb = await Sandbox.create() })
test.after(async () => {
  for (const n of nodes.values()) await n.stop()
  await sb.cleanup()
})

async function status (via: NodeHandle): Promise<any> {
  const r = await sb.run(['cluster', 'status', '--json', '--node', via.addr, '--timeout', '5000'])
  if (r.code !== 0) throw new Error(r.stderr)
  return r.json
}

test('three nodes form a cluster by join token; a wrong token is refused and changes nothing', async () => {
  const n1 = await sb.startNode({ args: ['--name', 'n1', ...FAST] })
  nodes.set('n1', n1)
  const t = await sb.run(['cluster', 'token', 'create', '--uses', '10', '--json', '--node', n1.addr])
  assert.is(t.code, 0, t.stderr)
  token = t.json.token

  const bad = await sb.run(['node', 'start', '--data-dir', join(sb.dir, 'bad'), '--listen', '127.0.0.1:0', '--peers', n1.addr,
    '--join-token', token.split('.').map((s, i) => i === 2 ? 'AAAA' + s.slice(4) : s).join('.'), '--json'], { timeoutMs: 30_000 })
  assert.not.equal(bad.code, 0)
  assert.match(bad.stderr, /InvalidToken/)

  for (const name of ['n2', 'n3']) {
    nodes.set(name, await sb.startNode({ args: ['--name', name, '--peers', n1.addr, '--join-token', token, ...FAST] }))
  }
  const listed = await waitFor(async () => {
    const r = await sb.run(['cluster', 'nodes', '--json', '--node', n1.addr])
    const ns = r.json?.nodes ?? []
    return ns.length === 3 && ns.every((n: any) => n.voter && n.health === 'healthy') ? ns : undefined
  }, 20_000, 'three healthy voters')
  assert.equal(listed.map((n: any) => n.name).sort(), ['n1', 'n2', 'n3'])
  const s = await status(nodes.get('n3') as NodeHandle)
  assert.equal(s.nodes, { total: 3, healthy: 3, suspected: 0, failed: 0 })
  assert.ok([...nodes.values()].some((n) => n.id === s.leader))
})

test('cluster shards: 256 shards over three data groups, replicated on every node, one data group led by each node', async () => {
  const ids = [...nodes.values()].map((n) => n.id).sort()
  const map = await waitFor(async () => {
    const r = await sb.run(['cluster', 'shards', '--json', '--node', (nodes.get('n2') as NodeHandle).addr])
    if (r.code !== 0) throw new Error(r.stderr)
    const data = r.json.groups.filter((g: any) => g.kind === 'data')
    // leaders spread by leadership transfer once the joined nodes are caught-up voters
    return new Set(data.map((g: any) => g.leader)).size === 3 ? r.json : undefined
  }, 30_000, 'data group leaders on three different nodes')
  assert.is(map.shardCount, 256)
  assert.equal(map.groups.map((g: any) => [g.group, g.kind]), [[0, 'system'], [1, 'data'], [2, 'data'], [3, 'data']])
  assert.equal(map.shards.map((s: any) => s.shard), Array.from({ length: 256 }, (_, i) => i))
  for (const s of map.shards) {
    assert.equal(s.replicas, ids, `shard ${s.shard} is replicated on every node`)
    assert.ok(ids.includes(s.leader), `shard ${s.shard} has a leader`)
    assert.equal(s.leader, map.groups[s.group].leader)
  }
  const human = await sb.run(['cluster', 'shards', '--node', (nodes.get('n1') as NodeHandle).addr])
  assert.match(human.stdout, /^group 0 \(system\) {2}shards - {2}leader \S+/m)
  assert.match(human.stdout, /^group 1 \(data\) {2}shards 0-85 {2}leader \S+/m)
})

test('any node serves any request: a file put through one node reads back through another', async () => {
  const bytes = randomBytes(9 * 1024 * 1024 + 17)
  await writeFile(join(sb.dir, 'x.bin'), bytes)
  const put = await sb.run(['fs', 'put', join(sb.dir, 'x.bin'), '/x.bin', '--node', (nodes.get('n2') as NodeHandle).addr])
  assert.is(put.code, 0, put.stderr)
  const get = await sb.run(['fs', 'get', '/x.bin', join(sb.dir, 'x.out'), '--node', (nodes.get('n3') as NodeHandle).addr])
  assert.is(get.code, 0, get.stderr)
  assert.ok(bytes.equals(await readFile(join(sb.dir, 'x.out'))))
})

test('kill -9 of the leader: a new leader and successful writes within seconds, nothing acknowledged lost; the old leader catches up', async () => {
  // metadata acknowledged before the kill, written through every node
  const acked: string[] = []
  for (const [name, n] of nodes) {
    await writeFile(join(sb.dir, `${name}.bin`), randomBytes(1000))
    const r = await sb.run(['fs', 'put', join(sb.dir, `${name}.bin`), `/before/${name}.bin`, '--node', n.addr])
    assert.is(r.code, 0, r.stderr)
    acked.push(`/before/${name}.bin`)
  }
  const leaderId = (await status(nodes.get('n1') as NodeHandle)).leader
  const [leaderName, leader] = [...nodes].find(([, n]) => n.id === leaderId) as [string, NodeHandle]
  const survivors = [...nodes].filter(([name]) => name !== leaderName).map(([, n]) => n)
  assert.is(await leader.stop('SIGKILL'), null)
  const killedAt = Date.now()

  await writeFile(join(sb.dir, 'after.bin'), randomBytes(1000))
  await waitFor(async () => {
    const r = await sb.run(['fs', 'put', join(sb.dir, 'after.bin'), '/after.bin', '--node', survivors[0].addr, '--timeout', '3000'])
    return r.code === 0 ? true : undefined
  }, 15_000, 'a write after the leader died')
  const failoverMs = Date.now() - killedAt
  assert.ok(failoverMs < 15_000, `failover took ${failoverMs} ms`)
  const s = await status(survivors[1])
  assert.ok(s.leader != null && s.leader !== leaderId, 'a new leader')
  for (const path of acked) {
    const r = await sb.run(['fs', 'stat', path, '--json', '--node', survivors[1].addr])
    assert.is(r.code, 0, `${path} lost: ${r.stderr}`)
  }
  const failed = await waitFor(async () => {
    const st = await status(survivors[0])
    return st.nodes.failed === 1 ? st : undefined
  }, 10_000, 'the killed node to be reported failed')
  assert.is(failed.nodes.healthy, 2)

  // many more writes than the snapshot interval while it is down: its log is compacted away
  const client = await sb.client(survivors[0])
  try {
    for (let i = 0; i < 60; i++) {
      await client.rpc.upload('fs.put', { path: `/while-down/${i}` }, (async function * () { yield new Uint8Array([i]) })())
    }
  } finally {
    await client.close()
  }

  // the old leader restarts from its data dir, on another port, without --peers, and catches up by snapshot
  const back = await sb.startNode({ dataDir: leader.dataDir, args: FAST, env: { DEBUG: 'dfs:metadata' } })
  nodes.set(leaderName, back)
  const seen = await waitFor(async () => {
    const r = await sb.run(['fs', 'stat', '/after.bin', '--json', '--node', back.addr, '--timeout', '3000'])
    return r.code === 0 ? r.json : undefined
  }, 20_000, 'the restarted node to see the write it missed')
  assert.is(seen.path, '/after.bin')
  const last = await sb.run(['fs', 'stat', '/while-down/59', '--json', '--node', back.addr])
  assert.is(last.code, 0, last.stderr)
  assert.match(back.stderr(), /restored a snapshot/, 'it caught up by snapshot')
  await waitFor(async () => {
    const st = await status(back)
    return st.nodes.healthy === 3 ? st : undefined
  }, 15_000, 'all three healthy again')
})

test('a small file travels inside its commit: each node stores its copy as it applies it, also nodes killed right after the put', async () => {
  // n1 again, with the lines that say which way each put went
  const old = nodes.get('n1') as NodeHandle
  await old.stop()
  const n1 = await sb.startNode({ dataDir: old.dataDir, args: FAST, env: { DEBUG: 'dfs:node:files,dfs:node:inline' } })
  nodes.set('n1', n1)
  await waitFor(async () => (await status(n1)).nodes.healthy === 3 ? true : undefined, 20_000, 'three healthy nodes')
  const small = randomBytes(4096)
  const small2 = randomBytes(100)
  const big = randomBytes(INLINE_FILE_BYTES_MAX + 1)
  for (const [name, bytes] of [['small', small], ['small2', small2], ['big', big]] as const) await writeFile(join(sb.dir, `${name}.bin`), bytes)
  const put = async (name: string): Promise<void> => {
    const r = await sb.run(['fs', 'put', join(sb.dir, `${name}.bin`), `/inline/${name}.bin`, '--node', n1.addr])
    assert.is(r.code, 0, r.stderr)
  }
  await put('small')
  await put('big')
  assert.match(n1.stderr(), /put \/inline\/small\.bin: 4096 bytes inside the commit/)
  assert.not.match(n1.stderr(), /put \/inline\/big\.bin: \d+ bytes inside the commit/, 'a file over INLINE_FILE_BYTES_MAX is copied before its commit')
  // n3 dies right after the commit: whatever it had not stored yet, its log still holds
  const n3 = nodes.get('n3') as NodeHandle
  await put('small2')
  await n3.stop('SIGKILL')
  nodes.set('n3', await sb.startNode({ dataDir: n3.dataDir, args: FAST }))
  const ids: Record<string, string> = {}
  for (const name of ['small', 'small2', 'big']) {
    // the first stats wait for the groups to elect leaders again
    const json = await waitFor(async () => {
      const r = await sb.run(['fs', 'stat', `/inline/${name}.bin`, '--json', '--node', (nodes.get('n3') as NodeHandle).addr, '--timeout', '3000'])
      // a failure says why, should the wait run out
      if (r.code !== 0) throw new Error(`exit ${r.code}: ${r.stderr.trim().split('\n').slice(-2).join(' | ')}`)
      return r.json
    }, 20_000, `a stat of ${name} after the restarts`)
    assert.is(json.extents.length, 1)
    assert.is(json.extents[0].replicas.length, 3, `${name}: three copies`)
    ids[name] = json.extents[0].id
  }
  // every node holds each copy: the restarted ones stored theirs again from their logs
  await new Promise((resolve) => setTimeout(resolve, 1000))
  for (const n of nodes.values()) await n.stop()
  for (const [name, n] of nodes) {
    for (const [file, bytes] of [['small', small], ['small2', small2], ['big', big]] as const) {
      const stored = await readExtent(join(n.dataDir, 'extents'), ids[file])
      assert.ok(stored !== undefined && Buffer.from(stored).equals(bytes), `${name} holds ${file}`)
    }
  }
})

test.run()
