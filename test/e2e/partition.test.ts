import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { randomBytes } from 'node:crypto'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Sandbox, waitFor, type NodeHandle } from './harness.js'

/**
 * A partition (injected with the test-only DFS_TEST_FAULTS hook: each side refuses connections to
 * the other) leaves the minority refusing writes with a clear error within its deadline while the
 * majority serves; after healing the minority converges.
 */
const test = suite('e2e: a partitioned cluster')
const FAST = ['--heartbeat-ms', '200', '--failure-timeout-ms', '1500']
const ENV = { DFS_TEST_FAULTS: '1' }

let sb: Sandbox
const nodes: NodeHandle[] = []

test.before(async () => { sb = await Sandbox.create() })
test.after(async () => {
  for (const n of nodes) await n.stop()
  await sb.cleanup()
})

async function partition (node: NodeHandle, block: string[]): Promise<void> {
  const client = await sb.client(node)
  try {
    await client.call('test.partition', { block })
  } finally {
    await client.close()
  }
}

test('the minority refuses writes within its deadline, the majority serves, and healing converges', async () => {
  nodes.push(await sb.startNode({ args: ['--name', 'n1', ...FAST], env: ENV }))
  const t = await sb.run(['cluster', 'token', 'create', '--json', '--node', nodes[0].addr])
  for (const name of ['n2', 'n3']) {
    nodes.push(await sb.startNode({ args: ['--name', name, '--peers', nodes[0].addr, '--join-token', t.json.token, ...FAST], env: ENV }))
  }
  await waitFor(async () => {
    const r = await sb.run(['cluster', 'nodes', '--json', '--node', nodes[0].addr])
    const m = r.json?.nodes ?? []
    return m.length === 3 && m.every((x: any) => x.voter && x.health === 'healthy') ? m : undefined
  }, 20_000, 'three healthy voters')

  // cut off the leader itself, the harder case: it must step down (check-quorum)
  const leaderId = (await sb.run(['cluster', 'status', '--json', '--node', nodes[0].addr])).json.leader
  const minority = nodes.find((n) => n.id === leaderId) as NodeHandle
  const majority = nodes.filter((n) => n !== minority)
  await partition(minority, majority.map((n) => n.id))
  for (const n of majority) await partition(n, [minority.id])

  await writeFile(join(sb.dir, 'p.bin'), randomBytes(1000))
  const majorityWrite = await waitFor(async () => {
    const r = await sb.run(['fs', 'put', join(sb.dir, 'p.bin'), '/majority.bin', '--json', '--node', majority[0].addr, '--timeout', '3000'])
    return r.code === 0 ? r.json : undefined
  }, 20_000, 'the majority to accept a write')
  assert.is(majorityWrite.path, '/majority.bin')

  // the minority answers with a typed error, within its deadline, and takes nothing
  const started = Date.now()
  const refused = await sb.run(['fs', 'put', join(sb.dir, 'p.bin'), '/minority.bin', '--json', '--node', minority.addr, '--timeout', '4000'])
  const tookMs = Date.now() - started
  assert.not.equal(refused.code, 0)
  assert.ok(['NoQuorum', 'DeadlineExceeded', 'Unavailable'].includes(refused.json.error.name), refused.stdout)
  assert.ok(tookMs < 15_000, `the minority answered after ${tookMs} ms`)
  const status = await sb.run(['cluster', 'status', '--json', '--node', minority.addr])
  assert.ok(status.json.leader === null || status.json.leader !== minority.id, 'the cut-off leader stepped down')

  for (const n of nodes) await partition(n, [])
  const healed = await waitFor(async () => {
    const r = await sb.run(['fs', 'stat', '/majority.bin', '--json', '--node', minority.addr, '--timeout', '3000'])
    return r.code === 0 ? r.json : undefined
  }, 20_000, 'the minority to see the majority\'s write after healing')
  assert.is(healed.path, '/majority.bin')
  const lost = await sb.run(['fs', 'stat', '/minority.bin', '--json', '--node', majority[1].addr])
  if (lost.code === 0) {
    // a refused write may still commit later (its outcome was unknown to the client): then everyone agrees
    const onMinority = await sb.run(['fs', 'stat', '/minority.bin', '--json', '--node', minority.addr])
    assert.is(onMinority.code, 0)
  } else {
    assert.is(lost.json.error.name, 'NotFound')
  }
})

test.run()
