import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { randomBytes } from 'node:crypto'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { DfsClient } from '../../src/client/index.js'
import { putFile } from '../../src/client/files.js'
import { countExtents } from './extents-on-disk.js'
import { Sandbox, sha256Hex, waitFor, type NodeHandle } from './harness.js'

/**
 * Real `dfs node start` processes, RF 3: a fifth node joins and `cluster rebalance --wait` moves copies
 * onto it; a drain moves every copy off a node while the coordinator (the metadata leader) is killed
 * with moves recorded but unfinished — the restarted cluster finishes them, every file still reads
 * identical, no extent lists the drained node and its store ends empty.
 */
const test = suite('e2e: rebalance and drain')
// moves throttled to 1 MiB/s so that a drain is still under way when the coordinator is killed;
// a long repair delay keeps repair out of the way of the moves
const FLAGS = ['--heartbeat-ms', '200', '--failure-timeout-ms', '1500', '--repair-delay-ms', '60000',
  '--extent-size', String(128 * 1024), '--move-bytes-per-second', String(1024 * 1024)]

let sb: Sandbox
const nodes: NodeHandle[] = []
const files = new Map<string, string>()

test.before(async () => { sb = await Sandbox.create() })
test.after(async () => {
  for (const n of nodes) await n.stop('SIGKILL')
  await sb.cleanup()
})

const sha = sha256Hex

async function client (via: NodeHandle): Promise<DfsClient> {
  return await sb.client(via, 20_000)
}

async function dfs (args: string[], timeoutMs = 60_000): Promise<any> {
  const r = await sb.run([...args, '--json', '--timeout', '15000'], { timeoutMs })
  if (r.code !== 0) throw new Error(`dfs ${args.join(' ')}: ${r.stderr}`)
  return r.json
}

/** Every extent record of every file, read through `via`. */
async function extents (via: NodeHandle): Promise<any[]> {
  const c = await client(via)
  try {
    const out: any[] = []
    for (const path of files.keys()) out.push(...(await c.call('fs.stat', { path })).extents)
    return out
  } finally {
    await c.close()
  }
}

async function readAll (via: NodeHandle): Promise<void> {
  await sb.readAll(via, files)
}

async function healthy (count: number): Promise<void> {
  await waitFor(async () => {
    const r = await sb.run(['cluster', 'nodes', '--json', '--node', nodes[0].addr])
    const ns = r.json?.nodes ?? []
    return ns.length === count && ns.every((n: any) => n.health === 'healthy') ? true : undefined
  }, 30_000, `${count} healthy members`)
}

let token = ''

test('a fifth node joins four holding 30 files: rebalance --wait moves copies onto it, files read identical', async () => {
  nodes.push(await sb.startNode({ args: ['--name', 'n1', ...FLAGS] }))
  token = (await dfs(['cluster', 'token', 'create', '--uses', '10', '--node', nodes[0].addr])).token
  for (const name of ['n2', 'n3', 'n4']) {
    nodes.push(await sb.startNode({ args: ['--name', name, '--peers', nodes[0].addr, '--join-token', token, ...FLAGS] }))
  }
  await healthy(4)
  await new Promise((resolve) => setTimeout(resolve, 1000)) // capacities reported by heartbeat
  const c = await client(nodes[1])
  try {
    for (let i = 0; i < 30; i++) {
      const bytes = randomBytes([1000, 100_000, 300_000, 700_000][i % 4] + i)
      const local = join(sb.dir, `in-${i}.bin`)
      await writeFile(local, bytes)
      await putFile(c, local, `/r/f${i}.bin`)
      files.set(`/r/f${i}.bin`, sha(bytes))
    }
  } finally {
    await c.close()
  }
  nodes.push(await sb.startNode({ args: ['--name', 'n5', '--peers', nodes[0].addr, '--join-token', token, ...FLAGS] }))
  const fifth = nodes[4]
  await healthy(5)
  await waitFor(async () => {
    const dry = await dfs(['cluster', 'rebalance', '--dry-run', '--node', nodes[2].addr])
    return dry.planned > 0 ? dry : undefined
  }, 15_000, 'a dry run to plan moves once the fifth node reports its capacity')
  assert.is((await extents(nodes[0])).filter((e) => e.replicas.includes(fifth.id)).length, 0, 'a dry run moves nothing')

  const r = await dfs(['cluster', 'rebalance', '--wait', '--node', nodes[2].addr], 60_000)
  assert.ok(r.planned > 0, `planned ${r.planned}`)
  assert.is(r.completed, r.planned)
  assert.is(r.moves.length, r.planned)
  assert.ok(r.moves.filter((m: any) => m.to === fifth.id).length > r.planned / 2, 'most moves go to the empty node')
  for (const m of r.moves) {
    assert.is.not(m.from, m.to)
    assert.type(m.bytes, 'number')
  }
  const all = await extents(nodes[0])
  assert.ok(all.filter((e) => e.replicas.includes(fifth.id)).length >= r.planned, 'the fifth node holds the moved copies')
  for (const e of all) assert.is(new Set(e.replicas).size, 3, 'still three distinct copies')
  await readAll(fifth)
  await readAll(nodes[0])
})

test('drain --cancel: the node takes copies again and its pending moves are cancelled; files read identical', async () => {
  const status = await dfs(['cluster', 'status', '--node', nodes[0].addr])
  const node = nodes.find((n) => n.id !== status.leader && n.id !== nodes[0].id) as NodeHandle
  const drain = await dfs(['cluster', 'drain', node.id, '--node', nodes[0].addr])
  assert.ok(drain.planned > 1, `drain planned ${drain.planned}`)
  const draining = async (): Promise<boolean> =>
    (await dfs(['cluster', 'nodes', '--node', nodes[0].addr])).nodes.find((n: any) => n.id === node.id).draining
  assert.is(await draining(), true)
  // moves run at 1 MiB/s: most are still recorded when the drain is called off
  const cancel = await dfs(['cluster', 'drain', node.id, '--cancel', '--node', nodes[0].addr])
  assert.is(cancel.node, node.id)
  assert.ok(cancel.cancelled > 0, `cancelled ${cancel.cancelled}`)
  assert.is(await draining(), false)
  const c = await client(nodes[0])
  try {
    const p = await c.call('cluster.rebalance.progress', { moves: drain.moves.map(({ extent, from, to }: any) => ({ extent, from, to })) })
    assert.is(p.pending, 0, 'no move off the node is still recorded')
    assert.is(p.completed + cancel.cancelled <= drain.planned, true)
  } finally {
    await c.close()
  }
  const left = (await extents(nodes[0])).filter((e) => e.replicas.includes(node.id)).length
  assert.ok(left > 0, 'the copies not moved stay on the node')
  const both = await sb.run(['cluster', 'drain', node.id, '--cancel', '--wait', '--node', nodes[0].addr])
  assert.is(both.code, 2, '--cancel and --wait do not go together')
  await readAll(nodes[0])
})

test('drain with the coordinator killed mid-move: the moves finish, nothing is lost, the node ends empty', async () => {
  const status = await dfs(['cluster', 'status', '--node', nodes[0].addr])
  const leader = nodes.find((n) => n.id === status.leader)
  assert.ok(leader != null, 'the leader is one of ours')
  const victim = nodes.find((n) => n !== leader && n.id !== nodes[0].id) as NodeHandle
  const via = nodes.find((n) => n !== leader && n !== victim) as NodeHandle

  const drain = await dfs(['cluster', 'drain', victim.id, '--node', via.addr])
  assert.ok(drain.planned > 0, `drain planned ${drain.planned}`)
  assert.ok(drain.remaining > 0)
  const c = await client(via)
  const progress = async (): Promise<any> => await c.call('cluster.rebalance.progress', { moves: drain.moves.map(({ extent, from, to }: any) => ({ extent, from, to })) })
  try {
    // some moves done, some not: the coordinator is mid-drain
    await waitFor(async () => { const p = await progress(); return p.completed > 0 ? p : undefined }, 30_000, 'a first move to finish')
    assert.ok((await progress()).pending > 0, 'moves still recorded when the coordinator dies')
    await leader.stop('SIGKILL')
    // new writes during the drain never land on the draining node
    const bytes = randomBytes(300_000)
    const local = join(sb.dir, 'during.bin')
    await writeFile(local, bytes)
    await waitFor(async () => { await putFile(c, local, '/r/during.bin'); return true }, 20_000, 'a put after the leader died')
    files.set('/r/during.bin', sha(bytes))
  } finally {
    await c.close()
  }
  const i = nodes.indexOf(leader)
  nodes[i] = await sb.startNode({ dataDir: leader.dataDir, args: [...FLAGS] })

  const done = await dfs(['cluster', 'drain', victim.id, '--wait', '--node', via.addr], 80_000)
  assert.is(done.remaining, 0)
  for (const e of await extents(via)) assert.not.ok(e.replicas.includes(victim.id), `${e.id} no longer lists the drained node`)
  // a put while the leader was dead may have recorded a copy as missing (its node was down or too
  // slow to answer within the write's grace): repair completes it
  await waitFor(async () => (await extents(via)).every((e) => new Set(e.replicas).size === 3 && !e.replicas.includes(victim.id)) ? true : undefined,
    30_000, 'three distinct copies of every extent, none on the drained node')
  await readAll(via)
  await readAll(nodes[i])

  // copies switched just before the kill are freed by the drained node's own start-up sweep
  await victim.stop('SIGTERM')
  let left = await countExtents(join(victim.dataDir, 'extents'))
  for (let attempt = 0; left > 0 && attempt < 3; attempt++) {
    const again = await sb.startNode({ dataDir: victim.dataDir, args: [...FLAGS] })
    await waitFor(async () => {
      const ns = (await dfs(['cluster', 'nodes', '--node', via.addr])).nodes
      return ns.find((n: any) => n.id === again.id)?.addrs?.[0] === again.addrs[0] ? true : undefined
    }, 20_000, 'the drained node to record its new address (its sweep follows)')
    await new Promise((resolve) => setTimeout(resolve, 1500))
    await again.stop('SIGTERM')
    left = await countExtents(join(victim.dataDir, 'extents'))
  }
  assert.is(left, 0, 'the drained node holds no extent')
  nodes.splice(nodes.indexOf(victim), 1)
})

test.run()
