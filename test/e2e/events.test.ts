import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { DFS, Sandbox, waitFor, type NodeHandle } from './harness.js'

/**
 * `dfs cluster events --follow --json` as an operator runs it: a real child process following the
 * repair coordinator (the system group's leader) of a three-node cluster while another node is
 * killed. Its JSON lines show the node Suspected, then Failed, then the repair that re-creates its
 * copies on the node left (replication factor 2, so the two survivors can hold every extent twice).
 * Ctrl-C ends it with status 0.
 */
const test = suite('e2e: cluster events')
const EXTENT = 64 * 1024
const FAST = ['--heartbeat-ms', '200', '--failure-timeout-ms', '1500', '--repair-delay-ms', '500', '--extent-size', String(EXTENT)]

let sb: Sandbox
const nodes: NodeHandle[] = []
let follower: ChildProcess | undefined

test.before(async () => { sb = await Sandbox.create() })
test.after(async () => {
  follower?.kill('SIGKILL')
  for (const n of nodes) await n.stop('SIGKILL')
  await sb.cleanup()
})

async function ok (args: string[], via: NodeHandle): Promise<any> {
  const r = await sb.run([...args, '--json', '--node', via.addr])
  assert.is(r.code, 0, `${args.join(' ')}: ${r.stderr}`)
  return r.json
}

test('a killed node shows Suspected, then Failed, then its copies repaired, in the follower\'s JSON lines', async () => {
  nodes.push(await sb.startNode({ args: ['--name', 'n1', ...FAST] }))
  const t = await ok(['cluster', 'token', 'create', '--uses', '2'], nodes[0])
  const joining = ['n2', 'n3'].map(async (name) => await sb.startNode({ args: ['--name', name, '--peers', nodes[0].addr, '--join-token', t.token, ...FAST] }))
  nodes.push(...await Promise.all(joining))
  await ok(['cluster', 'config', 'set', 'replication-factor', '2'], nodes[0])
  const status = await waitFor(async () => {
    const s = await ok(['cluster', 'status'], nodes[0])
    return s.leader !== null && s.nodes.healthy === 3 ? s : undefined
  }, 20_000, 'a leader and three healthy nodes')
  const leader = nodes.find((n) => n.id === status.leader)
  assert.ok(leader !== undefined, 'the leader is one of the three')

  const local = join(sb.dir, 'f.bin')
  await writeFile(local, randomBytes(8 * EXTENT))
  await ok(['fs', 'put', local, '/e/f.bin'], leader)
  const stat = await ok(['fs', 'stat', '/e/f.bin'], leader)
  const holders = new Set<string>(stat.extents.flatMap((e: { replicas: string[] }) => e.replicas))
  const victim = nodes.find((n) => n !== leader && holders.has(n.id))
  assert.ok(victim !== undefined, 'a node other than the leader holds copies')

  // the follower: a real `dfs` process, its stdout read line by line
  const lines: any[] = []
  let stderr = ''
  let partial = ''
  follower = spawn(process.execPath, [DFS, 'cluster', 'events', '--follow', '--json', '--node', leader.addr], { cwd: sb.dir, env: sb.env, stdio: ['ignore', 'pipe', 'pipe'] })
  follower.stdout?.setEncoding('utf8').on('data', (d: string) => {
    partial += d
    const parts = partial.split('\n')
    partial = parts.pop() ?? ''
    for (const p of parts) if (p !== '') lines.push(JSON.parse(p))
  })
  follower.stderr?.setEncoding('utf8').on('data', (d: string) => { stderr += d })
  const exited = new Promise<number | null>((resolve) => follower?.on('close', (code) => { resolve(code) }))
  // the leader saw the groups' leaders come and the members join before the follower started
  await waitFor(async () => lines.some((e) => e.kind === 'raft.leader') ? true : undefined, 15_000, `the recent events (stderr: ${stderr})`)
  for (const e of lines) {
    assert.type(e.seq, 'number')
    assert.ok(!Number.isNaN(Date.parse(e.at)), 'every event has its time')
  }
  const seen = lines.length

  await victim.stop('SIGKILL')
  const health = (to: string): number => lines.findIndex((e, i) => i >= seen && e.kind === 'node.health' && e.node === victim.id && e.to === to)
  await waitFor(async () => health('failed') >= 0 ? true : undefined, 15_000, `${victim.id} Failed in the follower's lines`)
  assert.ok(health('suspected') >= 0, 'Suspected is reported')
  assert.ok(health('suspected') < health('failed'), 'Suspected comes before Failed')
  assert.is(lines[health('failed')].from, 'suspected')
  const repaired = await waitFor(async () => lines.find((e) => e.kind === 'repair.finished'), 15_000, 'a repair in the follower\'s lines')
  assert.ok(stat.extents.some((x: { id: string }) => x.id === repaired.extent), 'the repair is of an extent of the file')
  assert.is(repaired.bytes, EXTENT)
  assert.ok(nodes.some((n) => n !== victim && n.id === repaired.target), 'the copy went to a live node')
  assert.ok(lines.indexOf(repaired) > health('failed'), 'the repair follows the failure')
  // seqs increase without gaps: no event was lost between polls
  for (let i = 1; i < lines.length; i++) assert.is(lines[i].seq, lines[i - 1].seq + 1)

  follower.kill('SIGINT')
  assert.is(await exited, 0, `Ctrl-C ends --follow with status 0 (stderr: ${stderr})`)
  follower = undefined
  nodes.splice(nodes.indexOf(victim), 1)

  // without --follow: one JSON document of the recent events
  const doc = await ok(['cluster', 'events', '--limit', '5'], leader)
  assert.is(doc.events.length, 5)
  assert.ok(doc.events[4].seq >= lines[lines.length - 1].seq, 'the newest events')
})

test.run()
