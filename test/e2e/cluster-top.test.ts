import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { spawn } from 'node:child_process'
import { DFS, Sandbox, waitFor, type NodeHandle } from './harness.js'

/**
 * `dfs cluster top` against a real node: `--json` is one snapshot (the cluster.overview answer),
 * `--once` one view, and without either it prints a view per refresh until SIGINT (blocks when
 * stdout is not a terminal). Audit entries are in the overview only for callers that may read the
 * audit log.
 */
const test = suite('e2e: dfs cluster top')

let sb: Sandbox
let node: NodeHandle

test.before(async () => {
  sb = await Sandbox.create()
  node = await sb.startNode({ args: ['--name', 'solo', '--region', 'eu-west'] })
})
test.after(async () => {
  await node?.stop()
  await sb.cleanup()
})

test('--json: one snapshot of the node, its groups and replication, with audit entries for an admin', async () => {
  // something the audit log records
  assert.is((await sb.run(['cluster', 'token', 'create', '--json', '--node', node.addr])).code, 0)
  const o = await waitFor(async () => {
    const r = await sb.run(['cluster', 'top', '--json', '--node', node.addr])
    assert.is(r.code, 0, r.stderr)
    return r.json.audit.some((e: any) => e.operation === 'cluster.token.create') === true ? r.json : undefined
  }, 10_000, 'the token in the overview\'s audit entries')
  assert.is(o.node, node.id)
  assert.is(o.nodesTotal, 1)
  assert.is(o.nodes[0].name, 'solo')
  assert.is(o.nodes[0].region, 'eu-west')
  assert.is(o.nodes[0].health, 'healthy')
  assert.ok(o.nodes[0].self)
  assert.ok(o.nodes[0].voterIn.includes(0))
  assert.ok(o.nodes[0].leads.includes(0), 'the only node leads the system group')
  assert.is(o.leader, node.id)
  assert.ok(o.groups.length >= 1)
  assert.is(o.replication.replicationFactor, 3)
  assert.is(o.replication.extents, 0)
  assert.is(typeof o.replication.movesRecorded, 'number')
})

test('a readonly user sees the overview without audit entries; a stranger is refused', async () => {
  const key = await sb.identity('viewer')
  const viewer = (await sb.run(['identity', 'show', '--json'], { env: { DFS_IDENTITY: key } })).json.id
  assert.is((await sb.run(['user', 'grant', viewer, 'readonly', '--json', '--node', node.addr])).code, 0)
  const r = await waitFor(async () => {
    const r = await sb.run(['cluster', 'top', '--json', '--node', node.addr], { env: { DFS_IDENTITY: key } })
    return r.code === 0 ? r : undefined
  }, 10_000, 'the grant to apply')
  assert.is(r.json.audit, null)
  assert.is(r.json.nodes.length, 1)
  const stranger = await sb.identity('stranger')
  const refused = await sb.run(['cluster', 'top', '--json', '--node', node.addr], { env: { DFS_IDENTITY: stranger } })
  assert.is(refused.code, 1)
  assert.is(refused.json.error.name, 'PermissionDenied')
})

test('--once: one view for people', async () => {
  const r = await sb.run(['cluster', 'top', '--once', '--node', node.addr])
  assert.is(r.code, 0, r.stderr)
  assert.match(r.stdout, /^dfs cluster [0-9a-f-]{36} {2}via solo/)
  assert.match(r.stdout, /NAME +HEALTH +REGION +ROLE/)
  assert.match(r.stdout, /solo\* +Healthy +eu-west +leads g0/)
  assert.match(r.stdout, /GROUP +KIND +SHARDS +LEADER/)
  assert.match(r.stdout, /replication factor 3: 0 extents, 0 under-replicated, 0 missing/)
  assert.match(r.stdout, /cluster\.token\.create/, 'an admin sees the audit entries')
  assert.not.ok(r.stdout.includes('\x1b['), 'no terminal control sequence when stdout is not a terminal')
})

test('without --once: a block per refresh until SIGINT, then exit 0', async () => {
  const child = spawn(process.execPath, [DFS, 'cluster', 'top', '--interval', '300ms', '--node', node.addr], { cwd: sb.dir, env: sb.env, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  child.stdout.setEncoding('utf8').on('data', (d: string) => { out += d })
  child.stderr.setEncoding('utf8').on('data', (d: string) => { err += d })
  const exited = new Promise<number | null>((resolve) => child.on('close', resolve))
  try {
    await waitFor(async () => (out.match(/^dfs cluster /gm) ?? []).length >= 3 ? true : undefined, 15_000, 'three refreshes')
  } finally {
    child.kill('SIGINT')
  }
  assert.is(await exited, 0, err)
  assert.not.ok(out.includes('\x1b['))
  // the blocks are separated by a blank line
  assert.ok(out.split('\n\n').filter((b) => b.startsWith('dfs cluster ')).length >= 3)
})

test('--interval out of range is refused', async () => {
  for (const bad of ['0', '50ms', '2h', 'soon']) {
    const r = await sb.run(['cluster', 'top', '--interval', bad, '--json', '--node', node.addr])
    assert.is(r.code, 1, bad)
    assert.is(r.json.error.name, 'InvalidArgument', bad)
  }
})

test.run()
