import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { randomBytes } from 'node:crypto'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { readExtent } from './extents-on-disk.js'
import { Sandbox, waitFor, type NodeHandle } from './harness.js'

/**
 * A node that catches up by snapshot holds its copies of the small files it missed before it counts
 * as caught up. Small files' bytes travel inside their commit, and every member stores its copy as
 * it applies the entry; a node that was down while they were written, and then got a snapshot in
 * place of those entries, used to be listed as a replica without a copy until its scrub (every 60 s)
 * found it missing. Now it fetches them while it restores the snapshot.
 */
const test = suite('e2e: catching up by snapshot brings the small files\' copies')
// slow heartbeats: the stopped node stays healthy (suspected after 40 s), so it is placed on, while the writes run
const ARGS = ['--heartbeat-ms', '20000', '--failure-timeout-ms', '120000', '--metadata-snapshot-every', '3']
// more entries than a group keeps after its snapshot (1000), so the stopped node gets a snapshot
const FILES = 1100

let sb: Sandbox
const nodes: NodeHandle[] = []

test.before(async () => { sb = await Sandbox.create() })
test.after(async () => {
  for (const n of nodes) await n.stop()
  await sb.cleanup()
})

test('a node restored from a snapshot fetches its copies of the small files written while it was down', async () => {
  nodes.push(await sb.startNode({ args: ['--name', 'n1', ...ARGS] }))
  const t = await sb.run(['cluster', 'token', 'create', '--uses', '10', '--json', '--node', nodes[0].addr])
  assert.is(t.code, 0, t.stderr)
  for (const name of ['n2', 'n3']) {
    nodes.push(await sb.startNode({ args: ['--name', name, '--peers', nodes[0].addr, '--join-token', t.json.token, ...ARGS] }))
  }
  await waitFor(async () => {
    const r = await sb.run(['cluster', 'shards', '--json', '--node', nodes[0].addr])
    return r.code === 0 && r.json.groups.every((g: any) => g.voters.length === 3) ? true : undefined
  }, 30_000, 'three voters in every group')
  // placement knows every node's capacity once each has sent a heartbeat: a put then lands on three
  await writeFile(join(sb.dir, 'warm.bin'), randomBytes(100))
  await waitFor(async () => {
    const p = await sb.run(['fs', 'put', join(sb.dir, 'warm.bin'), '/warm.bin', '--node', nodes[0].addr])
    if (p.code !== 0) return undefined
    const r = await sb.run(['fs', 'stat', '/warm.bin', '--json', '--node', nodes[0].addr])
    return r.code === 0 && r.json.extents[0].replicas.length === 3 ? true : undefined
  }, 90_000, 'a put placed on all three nodes')

  const [n1, , n3] = nodes
  assert.is(await n3.stop(), 0, n3.stderr())
  const client = await sb.client(n1)
  const written = new Map<string, Uint8Array>()
  const started = Date.now()
  try {
    for (let i = 0; i < FILES; i++) {
      const bytes = randomBytes(200 + (i % 50))
      await client.rpc.upload('fs.put', { path: `/small/f${i}` }, (async function * () { yield bytes })())
      written.set(`/small/f${i}`, bytes)
    }
  } finally {
    await client.close()
  }
  console.log(`    ${FILES} small puts with the node down in ${Date.now() - started} ms`)

  const back = await sb.startNode({ dataDir: n3.dataDir, args: ARGS, env: { DEBUG: 'dfs:metadata,dfs:node:inline' } })
  nodes[2] = back
  const last = await waitFor(async () => {
    const r = await sb.run(['fs', 'stat', `/small/f${FILES - 1}`, '--json', '--node', back.addr, '--timeout', '5000'])
    return r.code === 0 ? r.json : undefined
  }, 60_000, 'the restarted node to catch up')
  assert.is(last.path, `/small/f${FILES - 1}`)
  const first = await sb.run(['fs', 'stat', '/small/f0', '--json', '--node', back.addr])
  assert.ok(first.json.extents[0].replicas.includes(back.id), 'the node is listed as a replica of what it missed')

  // what its store holds, read from its LevelDB once it is stopped (well before its first scrub)
  const ids = new Map<string, string>()
  const probe = await sb.client(n1)
  try {
    for (const path of [...written.keys()].filter((_, i) => i % 50 === 0)) {
      const s = await probe.call('fs.stat', { path })
      ids.set(path, s.extents[0].id)
    }
  } finally {
    await probe.close()
  }
  assert.is(await back.stop(), 0, back.stderr())
  for (const [path, id] of ids) {
    const stored = await readExtent(`${back.dataDir}/extents`, id)
    assert.ok(stored !== undefined && Buffer.from(stored).equals(written.get(path) as Uint8Array), `the restored node holds its copy of ${path}`)
  }
  assert.match(back.stderr(), /restored a snapshot/, 'it caught up by snapshot')
  assert.match(back.stderr(), /fetched \d+ copies after a snapshot restore/)
})

test.run()
