// The etcd side of `bench:cluster --vs-etcd` (issue 18): a three-member etcd cluster on loopback and
// the same workload shapes bench-cluster.ts runs against dfs, so both print side by side.
//
// The cluster: Debian's etcd-server (/usr/bin/etcd, 3.4 when this was written), three members on
// 127.0.0.1 with free ports, each in its own directory under one temp dir, bootstrapped statically
// (--initial-cluster), default fsync, no TLS. It never outlives the bench: stopped and removed at the
// end, and killed and removed on process exit (Ctrl-C, a crash) by an 'exit' listener.
//
// The client: etcd's v3 JSON gateway (grpc-gateway: POST /v3/kv/put, /v3/kv/range,
// /v3/maintenance/status with base64 keys and values) over HTTP/1.1, one keep-alive connection per
// client (http.Agent, maxSockets 1), because Node has no etcd client without new packages. What the
// gateway and HTTP/1.1 cost beside etcd's own gRPC clients was not measured here: the etcd figures
// are etcd as reached through that gateway, not etcd at its best or worst.
//
// The workload, mirroring bench-cluster.ts: puts of a small value (VALUE_BYTES) under the same key
// names as dfs's empty-file puts; a get is a linearizable range (etcd's default, serializable=false)
// of one key, beside dfs's stat. Before any row, as many warm-up puts as dfs gets (warmUp). Latency
// rows: one client, --ops sequential puts then gets, after WARMUP_OPS unmeasured puts, through the
// leader and through a follower. Rate rows: C clients, each its own connection, spread round-robin
// over the members, each putting sequentially for --seconds.
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync, rmSync } from 'node:fs'
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { Agent, request } from 'node:http'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DeadlineExceededError, NodeUnreachableError } from '../src/api/errors.js'
import { waitFor } from '../test/e2e/harness.js'
import { closedLoop, closedLoopNote, fmt, jsonNumber, pct, warmPath, warmUp, warmUpNote } from './bench-stats.js'

/** Where Debian's etcd-server installs the server. */
export const ETCD_BINARY = '/usr/bin/etcd'
/** Deadline of one request to etcd. */
const REQUEST_TIMEOUT_MS = 10_000
/** Largest response body read from etcd (a status or one small key's range is well under 1 KiB). */
const RESPONSE_BYTES_MAX = 1 << 20
/** Longest the members may take to start and agree on a leader. */
const SETTLE_TIMEOUT_MS = 60_000
/** How long a stopping member gets after SIGTERM before SIGKILL. */
const STOP_GRACE_MS = 10_000
/** Bytes of each member's log kept for error messages. */
const STDERR_TAIL_CHARS = 20_000
/** Bytes of each put's value (dfs's empty-file put stores a small file record; etcd stores this). */
const VALUE_BYTES = 128
/** Attempts at a latency row whose leader changed while it was measured. */
const LATENCY_ATTEMPTS = 3
/** Members of the cluster: the same as dfs's three nodes. */
const MEMBERS = 3

/** An answer from etcd other than success: the HTTP status and the gateway's gRPC code and message. */
export class EtcdError extends Error {
  constructor (message: string, readonly status: number, readonly code: number | undefined) {
    super(message)
    this.name = 'EtcdError'
  }
}

/** One etcd client: one keep-alive HTTP/1.1 connection to one member's JSON gateway. */
export class EtcdClient {
  readonly #agent = new Agent({ keepAlive: true, maxSockets: 1 })
  readonly #host: string
  readonly #port: number

  /** `clientUrl`: http://host:port of a member's client listener. */
  constructor (readonly clientUrl: string, readonly timeoutMs = REQUEST_TIMEOUT_MS) {
    const u = new URL(clientUrl)
    this.#host = u.hostname
    this.#port = Number(u.port)
  }

  async put (key: string, value: Uint8Array): Promise<void> {
    await this.#post('/v3/kv/put', { key: b64(key), value: Buffer.from(value).toString('base64') })
  }

  /** A linearizable get of one key (serializable=false, etcd's default); resolves how many keys matched. */
  async get (key: string): Promise<number> {
    const res = await this.#post('/v3/kv/range', { key: b64(key) }) as { count?: string }
    return Number(res.count ?? 0)
  }

  /** The answering member's id and the leader it knows (uint64 ids as decimal strings; leader "0": none). */
  async status (): Promise<{ memberId: string, leader: string, version: string }> {
    const res = await this.#post('/v3/maintenance/status', {}) as { header?: { member_id?: string }, leader?: string, version?: string }
    return { memberId: res.header?.member_id ?? '', leader: res.leader ?? '0', version: res.version ?? '?' }
  }

  close (): void {
    this.#agent.destroy()
  }

  async #post (path: string, body: object): Promise<unknown> {
    const payload = JSON.stringify(body)
    return await new Promise((resolve, reject) => {
      let settled = false
      const settle = (err: Error | undefined, value?: unknown): void => {
        if (settled) return
        settled = true
        clearTimeout(timer)
        if (err !== undefined) reject(err)
        else resolve(value)
      }
      const req = request({
        host: this.#host,
        port: this.#port,
        path,
        method: 'POST',
        agent: this.#agent,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) }
      }, (res) => {
        const chunks: Buffer[] = []
        let size = 0
        res.on('data', (chunk: Buffer) => {
          size += chunk.length
          if (size > RESPONSE_BYTES_MAX) {
            req.destroy()
            settle(new EtcdError(`${this.clientUrl}${path}: response over ${RESPONSE_BYTES_MAX} bytes`, res.statusCode ?? 0, undefined))
            return
          }
          chunks.push(chunk)
        })
        res.on('error', (err) => { settle(new NodeUnreachableError(`${this.clientUrl}${path}: ${err.message}`)) })
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8')
          let parsed: unknown
          try {
            parsed = JSON.parse(text)
          } catch {
            settle(new EtcdError(`${this.clientUrl}${path}: HTTP ${res.statusCode ?? 0}, not JSON: ${text.slice(0, 200)}`, res.statusCode ?? 0, undefined))
            return
          }
          if (res.statusCode === 200) { settle(undefined, parsed); return }
          const e = parsed as { error?: string, message?: string, code?: number }
          settle(new EtcdError(`${this.clientUrl}${path}: HTTP ${res.statusCode ?? 0}: ${e.error ?? e.message ?? text.slice(0, 200)}`, res.statusCode ?? 0, e.code))
        })
      })
      const timer = setTimeout(() => {
        settle(new DeadlineExceededError(`${this.clientUrl}${path}: no answer within ${this.timeoutMs} ms`))
        req.destroy()
      }, this.timeoutMs)
      req.on('error', (err) => { settle(new NodeUnreachableError(`${this.clientUrl}${path}: ${err.message}`)) })
      req.end(payload)
    })
  }
}

const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64')

export interface EtcdMember {
  name: string
  /** http://127.0.0.1:port of its client listener (the JSON gateway). */
  clientUrl: string
  dataDir: string
  proc: ChildProcess
  exited: Promise<unknown>
  /** Its member id (decimal uint64), known once the cluster has settled. */
  memberId: string
  /** The last STDERR_TAIL_CHARS of its log. */
  stderrTail: () => string
}

export interface EtcdCluster {
  members: EtcdMember[]
  /** The etcd version the members report. */
  version: string
  /** The member every member names as leader (waits until they agree). */
  leader: () => Promise<EtcdMember>
  /** SIGTERM (SIGKILL after STOP_GRACE_MS) to every member, then removes their directories. */
  stop: () => Promise<void>
}

/** `n` distinct free TCP ports on 127.0.0.1 (free when asked; etcd binds them a moment later). */
async function freePorts (n: number): Promise<number[]> {
  const servers = await Promise.all(Array.from({ length: n }, async () => await new Promise<ReturnType<typeof createServer>>((resolve, reject) => {
    const s = createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => { resolve(s) })
  })))
  const ports = servers.map((s) => {
    const a = s.address()
    if (a == null || typeof a === 'string') throw new Error('a TCP server without a port')
    return a.port
  })
  await Promise.all(servers.map(async (s) => { await new Promise((resolve) => s.close(resolve)) }))
  return ports
}

/** Starts three etcd members on loopback and resolves once all three agree on a leader and take a put. */
export async function startEtcdCluster (binary = ETCD_BINARY): Promise<EtcdCluster> {
  const dir = await mkdtemp(join(tmpdir(), 'dfs-bench-etcd-'))
  const procs = new Set<ChildProcess>()
  // Ctrl-C or a crash (bench-nodes.ts exits the process on SIGINT/SIGTERM): nothing may outlive the bench
  const killAllSync = (): void => {
    for (const p of procs) p.kill('SIGKILL')
    rmSync(dir, { recursive: true, force: true })
  }
  process.on('exit', killAllSync)
  const members: EtcdMember[] = []
  const stop = async (): Promise<void> => {
    await Promise.all(members.map(async (m) => {
      if (m.proc.exitCode == null && m.proc.signalCode == null) {
        m.proc.kill('SIGTERM')
        const timer = setTimeout(() => m.proc.kill('SIGKILL'), STOP_GRACE_MS)
        await m.exited
        clearTimeout(timer)
      }
    }))
    process.off('exit', killAllSync)
    await rm(dir, { recursive: true, force: true })
  }
  try {
    const ports = await freePorts(2 * MEMBERS)
    const names = Array.from({ length: MEMBERS }, (_, i) => `e${i + 1}`)
    const peerUrl = (i: number): string => `http://127.0.0.1:${ports[2 * i + 1]}`
    const initialCluster = names.map((name, i) => `${name}=${peerUrl(i)}`).join(',')
    const token = `dfs-bench-${randomBytes(6).toString('hex')}`
    // the bench's own ETCD_* variables must not configure the members
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('ETCD')))
    for (const [i, name] of names.entries()) {
      const dataDir = join(dir, name)
      await mkdir(dataDir, { recursive: true, mode: 0o700 })
      const clientUrl = `http://127.0.0.1:${ports[2 * i]}`
      const proc = spawn(binary, [
        '--name', name, '--data-dir', dataDir,
        '--listen-client-urls', clientUrl, '--advertise-client-urls', clientUrl,
        '--listen-peer-urls', peerUrl(i), '--initial-advertise-peer-urls', peerUrl(i),
        '--initial-cluster', initialCluster, '--initial-cluster-state', 'new', '--initial-cluster-token', token,
        '--logger', 'zap', '--log-outputs', 'stderr', '--log-level', 'warn'
      ], { env, stdio: ['ignore', 'ignore', 'pipe'] })
      procs.add(proc)
      const exited = new Promise((resolve) => proc.on('close', (code) => { procs.delete(proc); resolve(code) }))
      let tail = ''
      proc.stderr?.setEncoding('utf8').on('data', (d: string) => { tail = (tail + d).slice(-STDERR_TAIL_CHARS) })
      // a failed spawn (no binary) is reported through 'close' as well; keep it from being unhandled
      proc.on('error', (err) => { tail += `\nspawn: ${err.message}` })
      members.push({ name, clientUrl, dataDir, proc, exited, memberId: '', stderrTail: () => tail })
    }

    const probes = members.map((m) => new EtcdClient(m.clientUrl, 2000))
    let version = '?'
    try {
      await waitFor(async () => {
        const gone = members.find((m) => m.proc.exitCode != null || m.proc.signalCode != null)
        // waitFor gives up at once on an error whose message starts with "node exited"
        if (gone != null) throw new Error(`node exited: etcd member ${gone.name} exited (${gone.proc.exitCode ?? gone.proc.signalCode}): ${gone.stderrTail().slice(-2000)}`)
        const st = await Promise.all(probes.map(async (p) => await p.status()))
        if (st.some((s) => s.leader === '0' || s.leader !== st[0].leader)) return undefined
        for (const [i, s] of st.entries()) members[i].memberId = s.memberId
        version = st[0].version
        await probes[0].put('/bench/etcd-ready', new Uint8Array(0))
        return true
      }, SETTLE_TIMEOUT_MS, 'three etcd members that agree on a leader')
    } finally {
      for (const p of probes) p.close()
    }

    const leader = async (): Promise<EtcdMember> => {
      const probes = members.map((m) => new EtcdClient(m.clientUrl, 2000))
      try {
        return await waitFor(async () => {
          const st = await Promise.all(probes.map(async (p) => await p.status()))
          if (st.some((s) => s.leader === '0' || s.leader !== st[0].leader)) return undefined
          return members.find((m) => m.memberId === st[0].leader)
        }, SETTLE_TIMEOUT_MS, 'an etcd leader every member names')
      } finally {
        for (const p of probes) p.close()
      }
    }
    return { members, version, leader, stop }
  } catch (err) {
    await stop()
    throw err
  }
}

/** What `--json` shows of etcd (milliseconds, operations per second; null where not measured). */
export interface EtcdJson {
  putP50MsLeader: number | null
  putP50MsFollower: number | null
  /** The linearizable get through the leader, beside dfs's statP50Ms. */
  getP50Ms: number | null
  getP50MsFollower: number | null
  opsPerSec: Record<string, number | null>
}

/** A result table (like bench-stats.ts's ResultTable) that can show an etcd figure and dfs/etcd beside a row. */
export class VersusTable {
  readonly #rows: Array<{ metric: string, cells: string[], med: number }> = []
  readonly #etcd = new Map<string, number>()
  readonly #valueWidth: number

  constructor (valueWidth: number) {
    this.#valueWidth = valueWidth
  }

  /** A dfs row: metric, median, p99, target, and ok / MISSED where a target applies. */
  row (metric: string, med: number, p99: number | string, target: string, ok?: boolean): void {
    this.#rows.push({ metric, med, cells: [fmt(med), typeof p99 === 'number' ? fmt(p99) : p99, target, ok == null ? '' : ok ? 'ok' : 'MISSED'] })
  }

  /** etcd's figure for the row named `metric` (its median); one no dfs row has gets its own row. */
  etcd (metric: string, value: number): void {
    this.#etcd.set(metric, value)
  }

  /** Writes the table line by line to `out`; the etcd columns only when an etcd figure was recorded. */
  print (out: (line: string) => void = (line) => { console.log(line) }): void {
    const vs = this.#etcd.size > 0
    const w = this.#valueWidth
    const line = (metric: string, cells: string[], etcd: string[]): void => {
      const dfs = cells.map((c, i) => c.padStart(i === 3 ? 7 : w))
      out([metric.padEnd(32), ...dfs, ...(vs ? [etcd[0].padStart(w), etcd[1].padStart(9)] : [])].join(' '))
    }
    line('metric', ['median', 'p99', 'target', ''], ['etcd', 'dfs/etcd'])
    for (const r of this.#rows) {
      const e = this.#etcd.get(r.metric)
      line(r.metric, r.cells, e == null ? ['', ''] : [fmt(e), ratioText(r.med, e)])
    }
    for (const [metric, e] of this.#etcd) {
      if (!this.#rows.some((r) => r.metric === metric)) line(metric, ['-', '', '', ''], [fmt(e), ''])
    }
  }
}

const ratio = (dfs: number, etcd: number): number => dfs / etcd
const ratioText = (dfs: number, etcd: number): string => {
  const r = ratio(dfs, etcd)
  return Number.isFinite(r) ? r.toFixed(2) : '-'
}

/**
 * The etcd side of a --vs-etcd run: its cluster, its rows in the shared table, its JSON and notes.
 * Row names are bench-cluster.ts's, so each etcd figure lands beside the dfs row it mirrors.
 */
export class EtcdComparison {
  readonly json: EtcdJson = { putP50MsLeader: null, putP50MsFollower: null, getP50Ms: null, getP50MsFollower: null, opsPerSec: { 1: null, 16: null, 64: null } }
  readonly notes: string[] = []
  readonly #value = randomBytes(VALUE_BYTES)

  private constructor (readonly cluster: EtcdCluster, readonly table: VersusTable, readonly log: (line: string) => void) {}

  /** Starts the etcd cluster; without `binary` says so in one line and resolves undefined. */
  static async start (table: VersusTable, log: (line: string) => void, binary = ETCD_BINARY): Promise<EtcdComparison | undefined> {
    if (!existsSync(binary)) {
      log(`--vs-etcd: etcd is not installed (no ${binary}; apt-get install etcd-server): running dfs alone`)
      return undefined
    }
    const cluster = await startEtcdCluster(binary)
    const leader = await cluster.leader()
    log(`etcd ${cluster.version}: three members on loopback (static bootstrap, fsync on, no TLS), leader ${leader.name}; ` +
      'driven through its JSON gateway over HTTP/1.1, one keep-alive connection per client')
    return new EtcdComparison(cluster, table, log)
  }

  /** As many puts as dfs's warm-up (a get after every fourth), alternately through the leader and a follower. */
  async warmUp (ops: number): Promise<void> {
    const leader = await this.cluster.leader()
    const cs = [leader, this.cluster.members.find((m) => m !== leader) as EtcdMember].map((m) => new EtcdClient(m.clientUrl))
    try {
      const w = await warmUp(ops, async (i) => {
        const c = cs[i % 2]
        await c.put(warmPath(i), this.#value)
        if (i % 4 === 3) await c.get(warmPath(i))
      })
      this.notes.push(`etcd ${warmUpNote('puts (a get after every fourth) under 16 prefixes, alternately via the leader and a follower', w)}`)
    } finally {
      for (const c of cs) c.close()
    }
  }

  /** The latency rows: put through a follower, then through the leader (as dfs), then the linearizable get. */
  async latency (ops: number, warmupOps: number): Promise<void> {
    for (const role of ['follower', 'leader'] as const) {
      for (let attempt = 1; ; attempt++) {
        const leader = await this.cluster.leader()
        const target = role === 'leader' ? leader : this.cluster.members.find((m) => m !== leader) as EtcdMember
        const c = new EtcdClient(target.clientUrl)
        const put: number[] = []
        const get: number[] = []
        try {
          for (let i = 0; i < warmupOps; i++) await c.put(`/bench/warm/${role}/${attempt}/${i}`, this.#value)
          for (let i = 0; i < ops; i++) {
            const t = performance.now()
            await c.put(`/bench/lat/${role}/${attempt}/${i}`, this.#value)
            put.push(performance.now() - t)
          }
          for (let i = 0; i < ops; i++) {
            const t = performance.now()
            const found = await c.get(`/bench/lat/${role}/${attempt}/${i}`)
            get.push(performance.now() - t)
            if (found !== 1) throw new Error(`etcd get of /bench/lat/${role}/${attempt}/${i} through ${target.name} found ${found} keys`)
          }
        } finally {
          c.close()
        }
        const after = await this.cluster.leader()
        if (after !== leader && attempt < LATENCY_ATTEMPTS) {
          this.log(`etcd latency via ${role}: the leader moved from ${leader.name} to ${after.name} during the row; measuring again`)
          continue
        }
        if (after !== leader) this.notes.push(`etcd latency via ${role}: the leader changed during all ${LATENCY_ATTEMPTS} attempts; the last one is shown`)
        this.log(`etcd latency via ${role} ${target.name}: put p50 ${fmt(pct(put, 0.5))} ms, get p50 ${fmt(pct(get, 0.5))} ms`)
        this.notes.push(`etcd via ${role} ${target.name}: put p50 ${fmt(pct(put, 0.5))} ms, p99 ${fmt(pct(put, 0.99))}; ` +
          `linearizable get p50 ${fmt(pct(get, 0.5))} ms, p99 ${fmt(pct(get, 0.99))}`)
        this.table.etcd(`empty put via ${role} (ms)`, pct(put, 0.5))
        this.table.etcd(`stat via ${role} (ms)`, pct(get, 0.5))
        if (role === 'leader') {
          this.json.putP50MsLeader = jsonNumber(pct(put, 0.5))
          this.json.getP50Ms = jsonNumber(pct(get, 0.5))
        } else {
          this.json.putP50MsFollower = jsonNumber(pct(put, 0.5))
          this.json.getP50MsFollower = jsonNumber(pct(get, 0.5))
        }
        break
      }
    }
  }

  /**
   * One rate row: `count` clients, each its own connection, round-robin over the members, putting
   * for `warmupS` seconds unmeasured (as dfs's rows do) and then for `seconds`.
   */
  async throughput (count: number, seconds: number, warmupS = 0): Promise<void> {
    const members = this.cluster.members
    const cs = Array.from({ length: count }, (_, j) => new EtcdClient(members[j % members.length].clientUrl))
    try {
      await Promise.all(cs.map(async (c, j) => { await c.put(`/bench/warm/c${count}/${j}`, this.#value) }))
      if (warmupS > 0) await closedLoop(cs.length, warmupS, async (j, i) => { await cs[j].put(`/tw${j}/c${count}/${i}`, this.#value) }, [])
      const run = await closedLoop(cs.length, seconds, async (j, i) => { await cs[j].put(`/tp${j}/c${count}/${i}`, this.#value) }, members.map((m) => m.proc.pid))
      const { lat } = run
      const rate = run.done / run.elapsedS
      const s = count === 1 ? '' : 's'
      this.json.opsPerSec[String(count)] = jsonNumber(rate)
      this.table.etcd(`put ops/s, ${count} client${s}`, rate)
      this.table.etcd(`put latency, ${count} client${s} (ms)`, pct(lat, 0.5))
      const leader = await this.cluster.leader()
      this.notes.push(closedLoopNote(`etcd, ${count} clients`, run, members.map((m) => m.name), members.map((m) => m === leader), `, p99 ${fmt(pct(lat, 0.99))} ms`))
      this.log(`etcd, ${count} clients: ${fmt(rate)} ops/s, p50 ${fmt(pct(lat, 0.5))} ms, p99 ${fmt(pct(lat, 0.99))} ms`)
    } finally {
      for (const c of cs) c.close()
    }
  }

  /** dfs ops/s ÷ etcd ops/s for every client count either measured (null unless both were). */
  ratio (dfsOpsPerSec: Record<string, number | null>): Record<string, number | null> {
    const out: Record<string, number | null> = {}
    for (const k of new Set([...Object.keys(dfsOpsPerSec), ...Object.keys(this.json.opsPerSec)])) {
      const d = dfsOpsPerSec[k]
      const e = this.json.opsPerSec[k]
      out[k] = d == null || e == null ? null : jsonNumber(ratio(d, e))
    }
    return out
  }

  async stop (): Promise<void> {
    await this.cluster.stop()
  }
}
