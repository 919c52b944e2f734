// Three-node cluster figures through the real parts: three `dfs node start` processes (Raft
// metadata, fsync on, default timeouts) formed by join token, driven by in-process clients over
// libp2p. Prints a table; asserts nothing.
//
//   node --import ./bin/polyfill.js --import tsx --conditions=dfs-source scripts/bench-cluster.ts \
//     [--ops 1000] [--seconds 5] [--failovers 5] [--clients 1,16,64] [--profile DIR] [--verbose] [--json]
//     [--scrape-every MS] [--vs-etcd] [--warmup 4000] [--row-warmup 3]
//
// --json: stdout carries one JSON document (JsonResult below); the progress lines and the table go to
// stderr.
//
// Metadata ops are empty-file puts (no extents: one PutFile through Raft) and stats (a ReadIndex
// read). Each concurrent client is its own DfsClient (own libp2p host, own connection), spread
// round-robin over the three nodes. Failover: SIGKILL the leader, then put through a survivor with
// a 1 s deadline per attempt until one succeeds; the killed node restarts on its data dir and port.
//
// --scrape-every MS: the nodes serve Prometheus metrics (--metrics-listen) and the status page
// (--http-listen), and every throughput row runs twice in the same run, once while the bench fetches
// every node's /metrics and /api/overview every MS (as a Prometheus server and an open status page
// would) and once not; which goes first alternates. It prints both ops/s and the nodes' CPU per put:
// on a shared 2-core machine ops/s swing more than 2 % run to run, CPU per put much less (issue 19:
// metrics and the page cost under 2 %). Steadier still: the nodes' CPU per scrape round, timed over
// SCRAPE_COST_ROUNDS rounds on the idle cluster, as a share of what they spend per second at each
// client count.
//
// --vs-etcd (issue 18): when /usr/bin/etcd exists (Debian's etcd-server), also a three-member etcd on
// loopback runs the same latency and rate rows (scripts/bench-etcd.ts); the table gains an etcd column
// and dfs/etcd, the JSON "etcd" and "ratio". etcd is driven through its JSON gateway over HTTP/1.1,
// whose cost beside a gRPC client was not measured. The system that runs first alternates per client
// count, so neither always gets the warmer machine.
import type { ChildProcess } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { cpus, loadavg } from 'node:os'
import { join } from 'node:path'
import type { RpcParams, RpcResult, UnaryMethodName } from '@dfs/api'
import { DfsClient } from '../src/client/index.js'
import { waitFor } from '../test/e2e/harness.js'
import { benchNodes, shardLeaderOf, stableShardLeaderOf, type BenchProcess, type ShardMap } from './bench-nodes.js'
import { EtcdComparison, VersusTable, type EtcdJson } from './bench-etcd.js'
import { WARMUP_OPS_DEFAULT, closedLoop, closedLoopNote, cpuSeconds, fmt, humanLog, jsonNumber, numberOption, pct, warmPath, warmUp, warmUpNote } from './bench-stats.js'

const args = process.argv.slice(2)
const opt = (name: string, def: number): number => numberOption(args, name, def)
const ops = opt('ops', 1000)
const seconds = opt('seconds', 5)
const failovers = opt('failovers', 5)
const clientsIdx = args.indexOf('--clients')
const clientCounts = (clientsIdx >= 0 ? args[clientsIdx + 1] : '1,16,64').split(',').map(Number)
/** `--verbose`: each failover's leader changes as the survivors logged them. */
const verbose = args.includes('--verbose')
/** `--json`: one JSON document on stdout, the human lines on stderr. */
const json = args.includes('--json')
const log = humanLog(json)
const profileIdx = args.indexOf('--profile')
/** `--profile DIR`: each node writes a V8 CPU profile (.cpuprofile) into DIR when it stops. */
const nodeFlags = profileIdx >= 0 ? ['--cpu-prof', `--cpu-prof-dir=${args[profileIdx + 1]}`] : []
/** Deadline of one put attempt while the cluster fails over. */
const FAILOVER_ATTEMPT_TIMEOUT_MS = 1000
/** Longest a failover may take before the bench gives up on it. */
const FAILOVER_GIVE_UP_MS = 30_000
/** Idle connections opened at once while setting up concurrent clients (nodes rate-limit inbound connections per host). */
const OPEN_BATCH = 8
/** `--scrape-every MS`: scrape every node's /metrics this often (0: no metrics listener, no scrapes). */
const scrapeEveryMs = opt('scrape-every', 0)
/** Deadline of one scrape. */
const SCRAPE_TIMEOUT_MS = 5000
/** Scrape rounds (every node's /metrics and /api/overview) timed back to back on the idle cluster. */
const SCRAPE_COST_ROUNDS = 200
/** `--vs-etcd`: the same rows against a three-member etcd, side by side (scripts/bench-etcd.ts). */
const vsEtcd = args.includes('--vs-etcd')

interface Node extends BenchProcess {
  /** performance.now() of each leader change this process logged (dfs:metadata), with the new leader and its own role; and of each peer its transport found unreachable. */
  leaderLog: Array<{ at: number, leader: string, role: string }>
}

// only the metadata service's own lines (leader changes): not on the request path
const bench = await benchNodes('dfs-bench-cluster-', 'dfs:metadata', nodeFlags)
const dir = bench.dir
const open = bench.open
const close = bench.close

/** Each running node's metrics listener (host:port), with --scrape-every. */
const metricsAt = new Map<ChildProcess, { metrics: string, page: string }>()

async function startNode (name: string, dataDir: string, extraFlags: string[], listen = '127.0.0.1:0'): Promise<Node> {
  const leaderLog: Node['leaderLog'] = []
  const extra = scrapeEveryMs > 0 ? [...extraFlags, '--metrics-listen', '127.0.0.1:0', '--http-listen', '127.0.0.1:0'] : extraFlags
  const started = await bench.start(name, dataDir, extra, {
    listen,
    onStderr: (d, at) => {
      for (const m of d.matchAll(/: leader (\S+) \((\w+)\)/g)) leaderLog.push({ at, leader: m[1], role: m[2] })
      // the Raft transport giving up on a peer for a while (reconnect back-off)
      for (const m of d.matchAll(/raft peer (\S+) unreachable \(([^)]*)\): dropped (\d+) messages, retrying in (\d+) ms/g)) {
        leaderLog.push({ at, leader: m[1], role: `unreachable:${m[3]}msgs:backoff${m[4]}ms` })
      }
    }
  })
  if (scrapeEveryMs > 0) {
    const info = JSON.parse(await readFile(join(dataDir, 'node.json'), 'utf8')) as { metrics?: string, http?: string }
    if (info.metrics === undefined || info.http === undefined) throw new Error(`${name} serves no metrics or status page (node.json has no listener)`)
    metricsAt.set(started.proc, { metrics: info.metrics, page: info.http })
    void started.exited.then(() => { metricsAt.delete(started.proc) })
  }
  return { ...started, leaderLog }
}

/**
 * The scraper of --scrape-every: every MS, every running node's /metrics and its status page's
 * overview (/api/overview, what an open page gets every second), each read to the end.
 */
const scrapes = { count: 0, failed: 0, bytes: 0, ms: [] as number[] }
let scraper: ReturnType<typeof setInterval> | undefined
function startScraper (): void {
  if (scrapeEveryMs <= 0 || scraper !== undefined) return
  scraper = setInterval(() => {
    for (const url of [...metricsAt.values()].flatMap((at) => [`http://${at.metrics}/metrics`, `http://${at.page}/api/overview`])) {
      const t = performance.now()
      fetch(url, { signal: AbortSignal.timeout(SCRAPE_TIMEOUT_MS) })
        .then(async (res) => {
          const body = await res.text()
          if (res.status !== 200) throw new Error(`HTTP ${res.status}`)
          scrapes.count++
          scrapes.bytes += body.length
          scrapes.ms.push(performance.now() - t)
        })
        .catch(() => { scrapes.failed++ })
    }
  }, scrapeEveryMs)
}
function stopScraper (): void {
  if (scraper !== undefined) clearInterval(scraper)
  scraper = undefined
}

const empty = async function * (): AsyncGenerator<Uint8Array> {}
async function putEmpty (c: DfsClient, path: string, timeoutMs = c.timeoutMs): Promise<void> {
  await c.rpc.upload('fs.put', { path }, empty(), { timeoutMs })
}

/** One admin connection per node process, reopened after a failure. */
const admins = new Map<ChildProcess, DfsClient>()
/** Admin calls go to the first node that answers. */
async function ask<M extends UnaryMethodName> (nodes: Node[], method: M, params: RpcParams<M>): Promise<RpcResult<M>> {
  let last: unknown
  for (const n of nodes) {
    let c = admins.get(n.proc)
    try {
      if (c == null) {
        c = await open(n, 3000)
        admins.set(n.proc, c)
      }
      return await c.call(method, params)
    } catch (err) {
      last = err
      // a typed answer (NoQuorum, Unavailable…) leaves the connection good; a lost one is reopened
      if (c != null && ['NodeUnreachable', 'DeadlineExceeded', 'Aborted'].includes((err as Error).name)) {
        admins.delete(n.proc)
        await close(c)
      }
    }
  }
  throw last
}

/** Three voters, all healthy, every node answering a linearizable read; resolves the leader's PeerId. */
async function settled (nodes: Node[]): Promise<string> {
  return await waitFor(async () => {
    const { nodes: listed } = await ask(nodes, 'cluster.nodes', {})
    if (listed.length !== 3 || !listed.every((m) => m.voter && m.health === 'healthy')) return undefined
    let leader: string | undefined
    for (const n of nodes) {
      const s = await ask([n], 'cluster.status', {})
      if (s.leader == null || (leader != null && s.leader !== leader)) return undefined
      leader = s.leader
    }
    return leader
  }, 60_000, 'three healthy voters that agree on a leader')
}

/** Puts through a connection before its latency row is measured (connection set-up). */
const WARMUP_OPS = 500
/** `--warmup N`: empty puts (and a stat after every fourth) before any row, over every metadata group (warmPath), alternately through the leader of /bench and another node (see WARMUP_OPS_DEFAULT). */
const clusterWarmupOps = opt('warmup', WARMUP_OPS_DEFAULT)
/**
 * `--row-warmup S`: every throughput row first runs S seconds unmeasured with its own clients, dfs
 * and etcd alike. The sequential warm-up above leaves the paths only concurrency takes cold (group
 * commit of several writes, forwarded proposals in flight, a stream per client): after it, the first
 * 3,000 puts of 16 clients ran ~30 % slower than the same puts after a warm-up with 16 clients
 * (0.52–0.72 ms of node CPU per put against 0.38–0.39), and a 4–5 s row measured mostly that.
 */
const rowWarmupS = opt('row-warmup', 3)

/** The shard map as `n` sees it (through the admin connection of `ask`). */
const shardsOf = async (n: Node): Promise<ShardMap> => await ask([n], 'cluster.shards', {})
const shardLeader = async (nodes: Node[], path: string): Promise<string> => await shardLeaderOf(nodes, path, shardsOf)
const stableShardLeader = async (nodes: Node[], path: string): Promise<string> => await stableShardLeaderOf(nodes, path, shardsOf)

const table = new VersusTable(14)
const row = table.row.bind(table)
const notes: string[] = []

/**
 * What `--json` prints (issue 18): milliseconds and operations per second, null where not measured.
 * Latencies are the p50 of --ops sequential ops, a rate is the one --seconds row of that client count,
 * failover is the median of --failovers kills. `opsPerSec` always has "1", "16" and "64" (null unless
 * --clients names them) and a key for every other count measured. `statP50Ms` is the stat through the
 * data-group leader, like the puts; `statP50MsFollower` is the same through another node.
 */
interface JsonResult {
  putP50MsLeader: number | null
  putP50MsFollower: number | null
  statP50Ms: number | null
  statP50MsFollower: number | null
  opsPerSec: Record<string, number | null>
  failoverMedianMs: number | null
  /** --scrape-every: the interval and how the scrapes went (null without it). */
  scrape: { everyMs: number, count: number, failed: number, p50Ms: number | null, overhead: Record<string, ScrapeOverhead> } | null
  /** --vs-etcd: etcd's figures of the same rows, and dfs ops/s ÷ etcd ops/s per client count (null without it or without etcd). */
  etcd: EtcdJson | null
  ratio: Record<string, number | null> | null
}
/** One client count's throughput run, not scraped and scraped. */
interface ScrapeOverhead {
  opsPerSec: number | null
  opsPerSecScraped: number | null
  nodeCpuMsPerPut: number | null
  nodeCpuMsPerPutScraped: number | null
  /** The idle cluster's CPU per scrape round × rounds per second ÷ the nodes' CPU per second in the plain run. */
  roundShare?: number | null
}
const overhead: Record<string, ScrapeOverhead> = {}
const result: JsonResult = {
  putP50MsLeader: null,
  putP50MsFollower: null,
  statP50Ms: null,
  statP50MsFollower: null,
  opsPerSec: { 1: null, 16: null, 64: null },
  failoverMedianMs: null,
  scrape: null,
  etcd: null,
  ratio: null
}
/** --vs-etcd with etcd installed: its cluster and rows. */
let etcd: EtcdComparison | undefined

try {
  log(`${cpus().length} CPUs, load average ${loadavg().map((l) => l.toFixed(2)).join(' ')} before start`)
  const nodes: Node[] = []
  nodes.push(await startNode('n1', join(dir, 'n1'), []))
  const { token } = await ask(nodes, 'cluster.token.create', { ttlMs: 3600_000, uses: 10 })
  const joined = await Promise.all(['n2', 'n3'].map(async (name) =>
    await startNode(name, join(dir, name), ['--peers', nodes[0].addr, '--join-token', token])))
  nodes.push(...joined)
  let leaderId = await settled(nodes)
  const byId = (id: string): Node => nodes.find((n) => n.id === id) as Node
  log(`cluster formed; leader ${byId(leaderId).name}${scrapeEveryMs > 0 ? `; each throughput row runs twice, once scraping every node's /metrics and /api/overview every ${scrapeEveryMs} ms` : ''}`)
  if (vsEtcd) etcd = await EtcdComparison.start(table, log)

  // 0. Warm-up of every process's request and Raft paths (etcd gets as many puts, though Go needs none)
  if (clusterWarmupOps > 0) {
    const benchLeader = await stableShardLeader(nodes, '/bench')
    const cs = await Promise.all([byId(benchLeader), nodes.find((n) => n.id !== benchLeader) as Node].map(async (n) => await open(n)))
    try {
      const w = await warmUp(clusterWarmupOps, async (i) => {
        const c = cs[i % 2]
        await putEmpty(c, warmPath(i))
        if (i % 4 === 3) await c.call('fs.stat', { path: warmPath(i) })
      })
      notes.push(warmUpNote('empty puts (a stat after every fourth) over 16 directories, alternately via the leader of /bench and another node', w))
      log(notes[notes.length - 1])
    } finally {
      await Promise.all(cs.map(async (c) => { await close(c) }))
    }
    if (etcd != null) await etcd.warmUp(clusterWarmupOps)
  }

  // 1. Latency, one connection, sequential; "leader" is the leader of the data group of /bench. The
  //    data groups' leaders spread over the nodes by leadership transfers in the first seconds of a
  //    cluster: measure once the leader has held for LEADER_STABLE_MS, and again if it changed during
  //    a row (a row measured against a node that lost the leadership midway is not that row).
  for (const role of ['follower', 'leader'] as const) {
    for (let attempt = 1; ; attempt++) {
      const benchLeader = await stableShardLeader(nodes, '/bench')
      const target = role === 'leader' ? byId(benchLeader) : nodes.find((n) => n.id !== benchLeader) as Node
      const measured = await latencyRow(role, target, attempt)
      const after = await shardLeader(nodes, '/bench')
      if (after === benchLeader || attempt >= 3) {
        if (after !== benchLeader) notes.push(`latency via ${role}: the leader of /bench changed during all 3 attempts; the last one is shown`)
        measured()
        break
      }
      log(`latency via ${role}: the leader of /bench moved from ${byId(benchLeader).name} to ${byId(after).name} during the row; measuring again`)
    }
  }

  /** Measures one latency row through `target`; the returned function records it. */
  if (etcd != null) await etcd.latency(ops, WARMUP_OPS)

  async function latencyRow (role: 'leader' | 'follower', target: Node, attempt: number): Promise<() => void> {
    const c = await open(target)
    try {
      for (let i = 0; i < WARMUP_OPS; i++) await putEmpty(c, `/bench/warm/${role}/${attempt}/${i}`)
      const put: number[] = []
      for (let i = 0; i < ops; i++) {
        const t = performance.now()
        await putEmpty(c, `/bench/lat/${role}/${attempt}/${i}`)
        put.push(performance.now() - t)
      }
      const stat: number[] = []
      for (let i = 0; i < ops; i++) {
        const t = performance.now()
        await c.call('fs.stat', { path: `/bench/lat/${role}/${attempt}/${i}` })
        stat.push(performance.now() - t)
      }
      log(`latency via ${role} ${target.name}: put p50 ${fmt(pct(put, 0.5))} ms, stat p50 ${fmt(pct(stat, 0.5))} ms`)
      return () => {
        row(`empty put via ${role} (ms)`, pct(put, 0.5), pct(put, 0.99), 'p50 <= 2', pct(put, 0.5) <= 2)
        row(`stat via ${role} (ms)`, pct(stat, 0.5), pct(stat, 0.99), 'p50 <= 2', pct(stat, 0.5) <= 2)
        if (role === 'leader') {
          result.putP50MsLeader = jsonNumber(pct(put, 0.5))
          result.statP50Ms = jsonNumber(pct(stat, 0.5))
        } else {
          result.putP50MsFollower = jsonNumber(pct(put, 0.5))
          result.statP50MsFollower = jsonNumber(pct(stat, 0.5))
        }
      }
    } finally {
      await close(c)
    }
  }

  // 1b. What one scrape round costs the nodes, on the idle cluster: their CPU over SCRAPE_COST_ROUNDS
  // rounds back to back, less their CPU over as long a time without (heartbeats, ticks)
  let scrapeRoundCpuS: number | undefined
  if (scrapeEveryMs > 0) {
    const nodeCpu = async (): Promise<number> => (await Promise.all(nodes.map(async (n) => await cpuSeconds(n.proc.pid) ?? 0))).reduce((a, b) => a + b, 0)
    const urls = [...metricsAt.values()].flatMap((at) => [`http://${at.metrics}/metrics`, `http://${at.page}/api/overview`])
    const c0 = await nodeCpu()
    const t0 = performance.now()
    for (let i = 0; i < SCRAPE_COST_ROUNDS; i++) {
      for (const url of urls) {
        const res = await fetch(url, { signal: AbortSignal.timeout(SCRAPE_TIMEOUT_MS) })
        await res.text()
      }
    }
    const busyS = (await nodeCpu()) - c0
    const spent = performance.now() - t0
    const c1 = await nodeCpu()
    await new Promise((resolve) => setTimeout(resolve, spent))
    const idleS = (await nodeCpu()) - c1
    scrapeRoundCpuS = Math.max(0, busyS - idleS) / SCRAPE_COST_ROUNDS
    row('scrape round: node CPU (ms)', scrapeRoundCpuS * 1000, '', '')
    notes.push(`scrape cost: ${SCRAPE_COST_ROUNDS} rounds of ${urls.length} requests in ${fmt(spent)} ms took the nodes ${fmt(busyS * 1000)} ms of CPU, ` +
      `${fmt(idleS * 1000)} ms in as long idle: ${fmt(scrapeRoundCpuS * 1000)} ms a round (all nodes)`)
  }

  // 2. Throughput: C clients, each its own host and connection, each putting sequentially
  for (const [k, count] of clientCounts.entries()) {
    // with --vs-etcd, etcd goes first at every other client count
    if (etcd != null && k % 2 === 1) await etcd.throughput(count, seconds, rowWarmupS)
    const cs: DfsClient[] = []
    try {
      for (let i = 0; i < count; i += OPEN_BATCH) {
        cs.push(...await Promise.all(Array.from({ length: Math.min(OPEN_BATCH, count - i) }, async (_, j) => await open(nodes[(i + j) % nodes.length]))))
      }
      await Promise.all(cs.map(async (c, j) => { await putEmpty(c, `/bench/warm/c${count}/${j}`) }))
      if (rowWarmupS > 0) await closedLoop(cs.length, rowWarmupS, async (j, i) => { await putEmpty(cs[j], `/tw${j}/c${count}/${i}`) }, [])
      /** One timed run of every client putting for `seconds`, under `label` (paths apart per run). */
      const measure = async (label: string): Promise<{ rate: number, lat: number[], nodeCpuS: number, note: string }> => {
        // each worker writes under its own top-level directory (its own bucket), so the writes
        // spread over the data groups as a sharded store's clients would
        const run = await closedLoop(cs.length, seconds, async (j, i) => { await putEmpty(cs[j], `/tp${j}/c${count}${label}/${i}`) }, nodes.map((n) => n.proc.pid))
        const nodeCpuS = run.cpuS.reduce<number>((sum, x) => sum + (x ?? 0), 0)
        const note = closedLoopNote(`${count} clients${label}`, run, nodes.map((n) => n.name), nodes.map((n) => n.id === leaderId))
        return { rate: run.done / run.elapsedS, lat: run.lat, nodeCpuS: nodeCpuS / Math.max(1, run.done), note }
      }
      const clients = `${count} client${count === 1 ? '' : 's'}`
      // --scrape-every: the same run twice, scraped and not (which goes first alternates), to see what
      // the scrapes cost: node CPU per put is the steadier figure on a shared machine
      let runs: Array<{ scraped: boolean, rate: number, lat: number[], nodeCpuS: number, note: string }> = []
      for (const scraped of scrapeEveryMs > 0 ? (k % 2 === 0 ? [true, false] : [false, true]) : [false]) {
        if (scraped) startScraper()
        try {
          runs.push({ scraped, ...await measure(scraped ? ' scraped' : '') })
        } finally {
          stopScraper()
        }
      }
      runs = runs.sort((a, b) => Number(a.scraped) - Number(b.scraped))
      const { rate, lat } = runs[0]
      result.opsPerSec[String(count)] = jsonNumber(rate)
      row(`put ops/s, ${clients}`, rate, '', count === 64 ? '>= 2000' : '', count === 64 ? rate >= 2000 : undefined)
      row(`put latency, ${clients} (ms)`, pct(lat, 0.5), pct(lat, 0.99), '')
      if (runs.length === 2) {
        const [plain, scraped] = runs
        overhead[String(count)] = { opsPerSec: jsonNumber(plain.rate), opsPerSecScraped: jsonNumber(scraped.rate), nodeCpuMsPerPut: jsonNumber(plain.nodeCpuS * 1000), nodeCpuMsPerPutScraped: jsonNumber(scraped.nodeCpuS * 1000) }
        row(`  scraped every ${scrapeEveryMs} ms: put ops/s`, scraped.rate, '', '')
        row('  node CPU ms per put, not scraped', plain.nodeCpuS * 1000, '', '')
        row('  node CPU ms per put, scraped', scraped.nodeCpuS * 1000, '', '')
        if (scrapeRoundCpuS !== undefined) {
          // a round every scrapeEveryMs, against what the nodes spent per second in the plain run
          const share = scrapeRoundCpuS * (1000 / scrapeEveryMs) / (plain.nodeCpuS * plain.rate)
          overhead[String(count)].roundShare = jsonNumber(share)
          row('  scrape rounds / node CPU of the run (%)', share * 100, '', '< 2 %', share < 0.02)
        }
      }
      for (const r of runs) notes.push(r.note)
      log(`${count} clients: ${fmt(rate)} ops/s, p50 ${fmt(pct(lat, 0.5))} ms, p99 ${fmt(pct(lat, 0.99))} ms${runs.length === 2 ? ` (scraped: ${fmt(runs[1].rate)} ops/s)` : ''}`)
    } finally {
      await Promise.all(cs.map(close))
    }
    if (etcd != null && k % 2 === 0) await etcd.throughput(count, seconds, rowWarmupS)
  }

  // 3. Failover: kill -9 the leader, put through a survivor until one succeeds
  const failoverMs: number[] = []
  const electionMs: number[] = []
  for (let k = 0; k < failovers; k++) {
    await settled(nodes)
    // the leader of the data group the failover writes go to (the system group is not on a put's path)
    leaderId = await shardLeader(nodes, `/bench/failover/${k}`)
    const leader = byId(leaderId)
    const survivors = nodes.filter((n) => n !== leader)
    const c = await open(survivors[0], FAILOVER_ATTEMPT_TIMEOUT_MS)
    let attempts = 0
    const errors = new Map<string, number>()
    try {
      await putEmpty(c, `/bench/failover/${k}/warm`)
      const logged = survivors.map((n) => n.leaderLog.length)
      leader.proc.kill('SIGKILL')
      const killedAt = performance.now()
      while (true) {
        attempts++
        const t = performance.now()
        try {
          await putEmpty(c, `/bench/failover/${k}/${attempts}`, FAILOVER_ATTEMPT_TIMEOUT_MS)
          break
        } catch (err) {
          const name = (err as Error).name
          errors.set(name, (errors.get(name) ?? 0) + 1)
          if (performance.now() - killedAt > FAILOVER_GIVE_UP_MS) throw new Error(`no write succeeded within ${FAILOVER_GIVE_UP_MS} ms of killing the leader`, { cause: err })
          // an attempt that failed at once (NoQuorum, NotLeader…) is retried after a short pause
          const spent = performance.now() - t
          if (spent < 10) await new Promise((resolve) => setTimeout(resolve, 10 - spent))
        }
      }
      const ms = performance.now() - killedAt
      failoverMs.push(ms)
      // the first survivor that logged a leader other than the dead one
      const first = survivors.flatMap((n, i) => n.leaderLog.slice(logged[i]))
        .filter((e) => !e.role.startsWith('unreachable') && e.leader !== 'none' && e.leader !== leaderId).sort((a, b) => a.at - b.at)[0]
      const election = first == null ? undefined : first.at - killedAt
      if (election != null) electionMs.push(election)
      const newLeader = nodes.find((n) => n.id === first?.leader)?.name ?? '?'
      const nameOf = (id: string): string => id === 'none' ? 'none' : nodes.find((n) => n.id === id)?.name ?? id.slice(-6)
      const timeline = survivors.map((n, i) => `${n.name}: ${n.leaderLog.slice(logged[i])
        .map((e) => `${nameOf(e.leader)}/${e.role.replace(/^State/, '')}@${(e.at - killedAt).toFixed(0)}`).join(' ')}`).join('; ')
      log(`failover ${k + 1}: killed ${leader.name}; new leader ${newLeader} known after ${election == null ? '?' : fmt(election)} ms; ` +
        `first put through ${survivors[0].name} after ${fmt(ms)} ms (${attempts} attempt${attempts === 1 ? '' : 's'}` +
        `${errors.size > 0 ? `: ${[...errors].map(([e, n]) => `${e} ×${n}`).join(', ')}` : ''})`)
      if (verbose) log(`  leader changes logged (leader/own role@ms after the kill): ${timeline}`)
    } finally {
      await close(c)
    }
    await leader.exited
    // back on its data dir and its port, as an operator would restart it
    const back = await startNode(leader.name, leader.dataDir, [], `127.0.0.1:${leader.port}`)
    nodes[nodes.indexOf(leader)] = back
  }
  if (failovers > 0) {
    await settled(nodes)
    result.failoverMedianMs = jsonNumber(pct(failoverMs, 0.5))
    row('failover: kill -9 → write (ms)', pct(failoverMs, 0.5), `${fmt(Math.max(...failoverMs))} max`, 'median <= 1500', pct(failoverMs, 0.5) <= 1500)
    if (electionMs.length > 0) row('  of which: new leader (ms)', pct(electionMs, 0.5), `${fmt(Math.max(...electionMs))} max`, '')
  }

  if (scrapeEveryMs > 0) {
    stopScraper()
    result.scrape = { everyMs: scrapeEveryMs, count: scrapes.count, failed: scrapes.failed, p50Ms: jsonNumber(pct(scrapes.ms, 0.5)), overhead }
    notes.push(`scrapes: ${scrapes.count} (/metrics and /api/overview of each node every ${scrapeEveryMs} ms during the scraped runs), ${scrapes.failed} failed, ` +
      `p50 ${fmt(pct(scrapes.ms, 0.5))} ms, p99 ${fmt(pct(scrapes.ms, 0.99))} ms, ${fmt(scrapes.bytes / Math.max(1, scrapes.count) / 1024)} KiB each`)
  }
  if (etcd != null) {
    result.etcd = etcd.json
    result.ratio = etcd.ratio(result.opsPerSec)
    notes.push(...etcd.notes)
  }
  log(`\nthree nodes (raft metadata, default timeouts), fsync on, ${cpus().length} CPUs shared by nodes and clients; ` +
    `${ops} sequential ops per latency row over one connection (after ${WARMUP_OPS} unmeasured); ${seconds} s per concurrency row (after ${rowWarmupS} s unmeasured with the same clients), clients spread over the three nodes; ` +
    `${failovers} failovers, ${FAILOVER_ATTEMPT_TIMEOUT_MS} ms per put attempt\n`)
  if (etcd != null) log('etcd: the same rows against three etcd members (fsync on) through its JSON gateway; its get is a linearizable range, beside stat; dfs/etcd above 1 is dfs faster for ops/s, slower for ms\n')
  table.print(log)
  log('')
  for (const n of notes) log(n)
  log(`load average ${loadavg().map((l) => l.toFixed(2)).join(' ')} at the end (other processes on this machine skew every figure)`)
  if (json) console.log(JSON.stringify(result, null, 2))
} finally {
  stopScraper()
  await etcd?.stop().catch((err: Error) => { log(`stopping etcd: ${err.message}`) })
  await bench.shutdown()
}

