import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { randomBytes } from 'node:crypto'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Sandbox, waitFor, type NodeHandle } from './harness.js'

/**
 * Five nodes: voters grow 1 → 3 → 5 as they join; with two of them killed (the leader among them)
 * the other three keep serving; an Admin removes the dead members.
 */
const test = suite('e2e: a five-node cluster')
const FAST = ['--heartbeat-ms', '200', '--failure-timeout-ms', '1500']

let sb: Sandbox
const nodes: NodeHandle[] = []

test.before(async () => { sb = await Sandbox.create() })
test.after(async () => {
  for (const n of nodes) await n.stop()
  await sb.cleanup()
})

async function members (via: NodeHandle): Promise<any[] | undefined> {
  const r = await sb.run(['cluster', 'nodes', '--json', '--node', via.addr, '--timeout', '5000'])
  return r.code === 0 ? r.json.nodes : undefined
}

test('voters grow 1 → 3 → 5; with two nodes killed, leader included, the cluster keeps serving; dead members are removed', async () => {
  nodes.push(await sb.startNode({ args: ['--name', 'n1', ...FAST] }))
  const t = await sb.run(['cluster', 'token', 'create', '--uses', '10', '--json', '--node', nodes[0].addr])
  assert.is(t.code, 0, t.stderr)
  for (const name of ['n2', 'n3', 'n4', 'n5']) {
    nodes.push(await sb.startNode({ args: ['--name', name, '--peers', nodes[0].addr, '--join-token', t.json.token, ...FAST] }))
    if (name === 'n2') {
      // two members: one voter is safer than two (a 2-voter group stops when either fails)
      const two = await waitFor(async () => { const m = await members(nodes[0]); return m?.length === 2 ? m : undefined }, 10_000, 'two members')
      assert.is(two.filter((m: any) => m.voter).length, 1)
    }
  }
  await waitFor(async () => {
    const m = await members(nodes[0])
    return m?.length === 5 && m.every((x: any) => x.voter && x.health === 'healthy') ? m : undefined
  }, 30_000, 'five healthy voters')

  const s = await sb.run(['cluster', 'status', '--json', '--node', nodes[0].addr])
  const leader = nodes.find((n) => n.id === s.json.leader) as NodeHandle
  const other = nodes.find((n) => n !== leader) as NodeHandle
  const dead = [leader, other]
  for (const n of dead) assert.is(await n.stop('SIGKILL'), null)
  const alive = nodes.filter((n) => !dead.includes(n))

  await writeFile(join(sb.dir, 'w.bin'), randomBytes(2048))
  await waitFor(async () => {
    const r = await sb.run(['fs', 'put', join(sb.dir, 'w.bin'), '/after-two-died.bin', '--node', alive[0].addr, '--timeout', '3000'])
    return r.code === 0 ? true : undefined
  }, 20_000, 'a write with two of five nodes dead')
  const read = await sb.run(['fs', 'stat', '/after-two-died.bin', '--json', '--node', alive[2].addr])
  assert.is(read.code, 0, read.stderr)

  for (const n of dead) {
    const r = await sb.run(['cluster', 'nodes', 'remove', n.id, '--json', '--node', alive[1].addr])
    assert.is(r.code, 0, r.stderr)
    assert.is(r.json.id, n.id)
  }
  const left = await waitFor(async () => {
    const m = await members(alive[0])
    return m?.length === 3 && m.every((x: any) => x.voter && x.health === 'healthy') ? m : undefined
  }, 15_000, 'three healthy voters left')
  assert.equal(left.map((m: any) => m.id).sort(), alive.map((n) => n.id).sort())
  const unknown = await sb.run(['cluster', 'nodes', 'remove', 'no-such-node', '--json', '--node', alive[0].addr])
  assert.is(unknown.json.error.name, 'NotFound')
})

test.run()
