import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { randomBytes } from 'node:crypto'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { DfsClient } from '../../src/client/index.js'
import { putFile } from '../../src/client/files.js'
import { ROOT, Sandbox, waitFor, type NodeHandle } from './harness.js'

/**
 * A placement policy from a plugin the core does not know: `dfs plugins link plugins/placement-region`
 * on the nodes, `dfs cluster policy set placement region`, and new extents are placed by it.
 *
 * Five nodes, three in region a and two in region b, replication factor 4. `default` spreads over
 * both regions and then takes the least full nodes, so some extents get three copies in a; `region`
 * goes round the regions, so every extent gets two copies in each.
 */
const test = suite('e2e: selecting a placement policy from a linked plugin')
const PLUGIN = join(ROOT, 'plugins', 'placement-region')
const FAST = ['--heartbeat-ms', '200', '--failure-timeout-ms', '1500']

let sb: Sandbox
const nodes: NodeHandle[] = []

test.before(async () => { sb = await Sandbox.create() })
test.after(async () => {
  for (const n of nodes) await n.stop('SIGKILL')
  await sb.cleanup()
})

/** Copies per region of every extent of the files under `dir`, as "a:b" strings. */
async function splits (c: DfsClient, dir: string, count: number, region: Map<string, string>): Promise<string[]> {
  const out: string[] = []
  for (let i = 0; i < count; i++) {
    const st = await c.call('fs.stat', { path: `${dir}/f${i}` })
    for (const e of st.extents) {
      const a = e.replicas.filter((r: string) => region.get(r) === 'a').length
      out.push(`${a}:${e.replicas.length - a}`)
    }
  }
  return out
}

test('an unknown policy is refused; after linking, selecting "region" changes where copies go', async () => {
  const link = await sb.run(['plugins', 'link', PLUGIN])
  assert.is(link.code, 0, link.stderr)
  const regions = ['a', 'a', 'a', 'b', 'b']
  nodes.push(await sb.startNode({ args: ['--name', 'n0', '--region', regions[0], ...FAST] }))
  const t = await sb.run(['cluster', 'token', 'create', '--uses', '10', '--json', '--node', nodes[0].addr])
  for (let i = 1; i < 5; i++) {
    nodes.push(await sb.startNode({ args: ['--name', `n${i}`, '--region', regions[i], '--peers', nodes[0].addr, '--join-token', t.json.token, ...FAST] }))
  }
  const listed = await waitFor(async () => {
    const r = await sb.run(['cluster', 'nodes', '--json', '--node', nodes[0].addr])
    const ns = r.json?.nodes ?? []
    return ns.length === 5 && ns.every((n: any) => n.health === 'healthy') ? ns : undefined
  }, 30_000, 'five healthy members')
  const region = new Map<string, string>(listed.map((n: any) => [n.id, n.region]))
  await new Promise((resolve) => setTimeout(resolve, 1000)) // every node has reported its capacity

  const rf = await sb.run(['cluster', 'config', 'set', 'replication-factor', '4', '--json', '--node', nodes[1].addr])
  assert.is(rf.code, 0, rf.stderr)
  assert.is(rf.json.replicationFactor, 4)
  const unknown = await sb.run(['cluster', 'policy', 'set', 'placement', 'nope', '--json', '--node', nodes[0].addr])
  assert.is(unknown.json.error.name, 'UnknownService')

  const c = await sb.client(nodes[0], 20_000)
  try {
    const local = join(sb.dir, 'small.bin')
    const N = 30
    for (let i = 0; i < N; i++) {
      await writeFile(local, randomBytes(5000 + i))
      await putFile(c, local, `/default/f${i}`)
    }
    const before = await splits(c, '/default', N, region)
    assert.ok(before.every((s) => s === '2:2' || s === '3:1'), before.join(' '))
    assert.ok(before.includes('3:1'), `default placement never put three copies in region a: ${before.join(' ')}`)

    const set = await sb.run(['cluster', 'policy', 'set', 'placement', 'region', '--json', '--node', nodes[2].addr])
    assert.is(set.code, 0, set.stderr)
    assert.equal(set.json, { kind: 'placement', name: 'region' })
    // the setting is in the system group: the node receiving puts applies it within moments
    await waitFor(async () => {
      const cfg = await sb.run(['cluster', 'config', '--json', '--node', nodes[0].addr])
      return cfg.json?.placementPolicy === 'region' ? true : undefined
    }, 10_000, 'the policy setting to reach the first node')
    for (let i = 0; i < N; i++) {
      await writeFile(local, randomBytes(5000 + i))
      await putFile(c, local, `/region/f${i}`)
    }
    const after = await splits(c, '/region', N, region)
    assert.ok(after.every((s) => s === '2:2'), `region placement: ${after.join(' ')}`)
  } finally {
    await c.close()
  }
})

test.run()
