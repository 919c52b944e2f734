import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { randomBytes } from 'node:crypto'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Sandbox, waitFor, type NodeHandle } from './harness.js'

/**
 * `--metrics-listen` on a three-node cluster of real processes, scraped over HTTP as Prometheus
 * would: the figures are there in the text format and move as things happen — a put counts in
 * dfs_rpc_requests_total, dfs_rpc_received_bytes_total and dfs_store_bytes, a killed node shows as failed in dfs_cluster_nodes
 * and its extents as under-replicated (two nodes cannot repair to three copies); a fourth node
 * joining takes them, which dfs_repair_bytes_total counts.
 */
const test = suite('e2e: Prometheus metrics')
const FAST = ['--heartbeat-ms', '200', '--failure-timeout-ms', '1500', '--repair-delay-ms', '1000', '--extent-size', String(256 * 1024)]
const METRICS = ['--metrics-listen', '127.0.0.1:0']

let sb: Sandbox
const nodes: NodeHandle[] = []
const scrapeAt: string[] = []

test.before(async () => { sb = await Sandbox.create() })
test.after(async () => {
  for (const n of nodes) await n.stop()
  await sb.cleanup()
})

async function ok (args: string[], via = 0): Promise<any> {
  const r = await sb.run([...args, '--json', '--node', nodes[via].addr])
  assert.is(r.code, 0, `${args.join(' ')}: ${r.stderr}`)
  return r.json
}

/** One scrape of node `i`: every sample as `name{labels}` → value. */
async function scrape (i: number): Promise<Map<string, number>> {
  const res = await fetch(`http://${scrapeAt[i]}/metrics`)
  assert.is(res.status, 200)
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/)
  const samples = new Map<string, number>()
  for (const line of (await res.text()).split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const at = line.lastIndexOf(' ')
    samples.set(line.slice(0, at), Number(line.slice(at + 1)))
  }
  return samples
}

test('three nodes, each serving /metrics; the listener is in node.json', async () => {
  nodes.push(await sb.startNode({ args: ['--name', 'n1', ...FAST, ...METRICS] }))
  const t = await ok(['cluster', 'token', 'create', '--uses', '2'])
  for (const name of ['n2', 'n3']) nodes.push(await sb.startNode({ args: ['--name', name, '--peers', nodes[0].addr, '--join-token', t.token, ...FAST, ...METRICS] }))
  for (const n of nodes) scrapeAt.push(JSON.parse(await readFile(join(n.dataDir, 'node.json'), 'utf8')).metrics)
  await waitFor(async () => (await scrape(0)).get('dfs_cluster_nodes{health="healthy"}') === 3 ? true : undefined, 30_000, 'three healthy nodes in n1\'s metrics')
  const m = await scrape(1)
  // every group has a leader, one system group and three data groups
  for (const g of ['0', '1', '2', '3']) assert.is(m.get(`dfs_raft_has_leader{group="${g}"}`), 1, `group ${g}`)
  assert.ok((m.get('dfs_raft_applied_index') ?? 0) > 0)
  // anything but /metrics is 404, anything but GET 405
  assert.is((await fetch(`http://${scrapeAt[0]}/other`)).status, 404)
  assert.is((await fetch(`http://${scrapeAt[0]}/metrics`, { method: 'POST' })).status, 405)
})

test('a put moves the RPC counters and the stored bytes of every node', async () => {
  const before = await Promise.all([0, 1, 2].map(scrape))
  const local = join(sb.dir, 'f.bin')
  await writeFile(local, randomBytes(3 * 256 * 1024))
  await ok(['fs', 'put', local, '/m/f.bin'])
  await ok(['fs', 'stat', '/nothing-here'], 0).catch(() => {})
  const after = await Promise.all([0, 1, 2].map(scrape))
  // the CLI sends a file as fs.put.encoded (pieces it compressed where they shrink; random bytes do not)
  const puts = (m: Map<string, number>): number => m.get('dfs_rpc_requests_total{method="fs.put.encoded",code="OK"}') ?? 0
  assert.is(puts(after[0]) - puts(before[0]), 1, 'one fs.put.encoded served by n1')
  assert.ok((after[0].get('dfs_rpc_request_duration_seconds_count{method="fs.put.encoded"}') ?? 0) >= 1)
  const received = (m: Map<string, number>): number => m.get('dfs_rpc_received_bytes_total{method="fs.put.encoded"}') ?? 0
  const got = received(after[0]) - received(before[0])
  // the file's bytes, a 16-byte piece header and the call's header
  assert.ok(got > 3 * 256 * 1024 && got < 3 * 256 * 1024 + 1024, `n1 received ${got} bytes of the put`)
  assert.ok((after[0].get('dfs_rpc_sent_bytes_total{method="fs.put.encoded"}') ?? 0) > 0, 'and sent its answer')
  for (let i = 0; i < 3; i++) {
    assert.ok((after[i].get('dfs_store_bytes') ?? 0) >= (before[i].get('dfs_store_bytes') ?? 0) + 3 * 256 * 1024, `n${i + 1} stores a copy`)
    const held = after[i].get('dfs_store_held_bytes')
    assert.ok(held !== undefined && held >= 0 && held <= 16 * 1024 * 1024, `n${i + 1} shows the copies its store holds (${String(held)})`)
    // the put's commit went through the Raft log of every node, fsync'd
    const fsyncs = (m: Map<string, number>): number => m.get('dfs_disk_log_fsync_duration_seconds_count') ?? 0
    assert.ok(fsyncs(after[i]) > fsyncs(before[i]), `n${i + 1} fsync'd its log`)
    const applied = (m: Map<string, number>): number => [...m].filter(([k]) => k.startsWith('dfs_raft_entries_applied_total{')).reduce((n, [, v]) => n + v, 0)
    assert.ok(applied(after[i]) > applied(before[i]), `n${i + 1} applied the commit`)
  }
  const proposed = (m: Map<string, number>): number => [...m].filter(([k]) => k.startsWith('dfs_raft_proposals_applied_total{')).reduce((n, [, v]) => n + v, 0)
  assert.ok(proposed(after[0]) > proposed(before[0]), 'n1 proposed the commit and saw it apply')
  // a refused call counts under its error's name
  const r = await sb.run(['fs', 'stat', '/missing', '--json', '--node', nodes[0].addr])
  assert.is(r.json?.error?.name, 'NotFound')
  assert.ok(((await scrape(0)).get('dfs_rpc_requests_total{method="fs.stat",code="NotFound"}') ?? 0) >= 1)
})

test('a killed node: failed in dfs_cluster_nodes, its copies under-replicated', async () => {
  await nodes[2].stop('SIGKILL')
  const m = await waitFor(async () => {
    const s = await scrape(0)
    return s.get('dfs_cluster_nodes{health="failed"}') === 1 && (s.get('dfs_extents_under_replicated') ?? 0) >= 3 ? s : undefined
  }, 30_000, 'n3 failed and its extents under-replicated in n1\'s metrics')
  assert.is(m.get('dfs_cluster_nodes{health="healthy"}'), 2)
  nodes.pop()
  // the figures of issue 19's second slice are served (before any repair, move or scrub finding)
  for (const name of ['dfs_repair_queue_length', 'dfs_repair_bytes_total', 'dfs_scrub_errors_total', 'dfs_rebalance_moves{state="pending"}', 'dfs_rebalance_moves{state="in_flight"}']) {
    assert.ok(m.has(name), `${name} is served`)
  }
  assert.ok([...m.keys()].some((k) => k.startsWith('dfs_raft_proposals_failed_total{')), 'dfs_raft_proposals_failed_total is served')
})

test('a node that joins takes the failed one\'s copies: dfs_repair_bytes_total moves', async () => {
  const t = await ok(['cluster', 'token', 'create', '--uses', '1'])
  nodes.push(await sb.startNode({ args: ['--name', 'n4', '--peers', nodes[0].addr, '--join-token', t.token, ...FAST, ...METRICS] }))
  scrapeAt[2] = JSON.parse(await readFile(join(nodes[2].dataDir, 'node.json'), 'utf8')).metrics
  // the repair coordinator (whichever node leads the system group) counts the bytes it copied
  const repaired = await waitFor(async () => {
    const all = await Promise.all([0, 1, 2].map(scrape))
    const bytes = all.reduce((n, s) => n + (s.get('dfs_repair_bytes_total') ?? 0), 0)
    return bytes >= 3 * 256 * 1024 ? all : undefined
  }, 30_000, 'the three extents of n3 copied to n4 in dfs_repair_bytes_total')
  assert.ok(repaired.some((s) => (s.get('dfs_repair_copies_total{outcome="finished"}') ?? 0) >= 3))
})

test('per-tenant usage: dfs_tenant_bytes and dfs_tenant_files', async () => {
  await ok(['tenant', 'create', 'acme'])
  const local = join(sb.dir, 't.bin')
  await writeFile(local, randomBytes(1000))
  await ok(['fs', 'put', local, '/t.bin', '--tenant', 'acme'])
  const m = await waitFor(async () => {
    const s = await scrape(1)
    return s.get('dfs_tenant_files{tenant="acme"}') === 1 ? s : undefined
  }, 10_000, 'the tenant\'s file in n2\'s metrics')
  assert.is(m.get('dfs_tenant_bytes{tenant="acme"}'), 1000)
  assert.ok((m.get('dfs_tenants') ?? 0) >= 1)
})

test.run()
