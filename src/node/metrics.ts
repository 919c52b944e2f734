/**
 * Prometheus metrics of one node (`dfs node start --metrics-listen HOST:PORT`): `GET /metrics` in
 * the text exposition format, from prom-client. Names follow etcd's and Garage's with a `dfs_`
 * prefix. RPC counters come from an interceptor every call passes (also refused ones); the rest is
 * read at scrape time from this node's applied state and services, so a scrape costs the node
 * nothing between scrapes but a one-second leader sampler.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import { logger } from '@libp2p/logger'
import { Counter, Gauge, Histogram, Registry } from 'prom-client'
import type { ExtentStore, MetadataRaftStats, MetadataService, ReplicationService, RpcCallInfo, RpcCallOutcome, RpcInterceptor } from '@dfs/api'
import type { EventLog } from './events.js'
import { listenHttp, listeningAt } from './http-listener.js'

const log = logger('dfs:node:metrics')

/** How often the leader of every group is sampled (for dfs_raft_leader_changes_seen_total). */
export const LEADER_SAMPLE_MS = 1000
/** Longest a scrape may take to gather the figures that ask a service (replication status, store usage). */
const COLLECT_TIMEOUT_MS = 5000
/** RPC duration buckets, seconds: from a local stat to a large upload. */
const RPC_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 120]
/** Most tenants dfs_tenant_bytes and dfs_tenant_files show (the largest by bytes): bounds the series a scrape holds. */
export const TENANT_SERIES_MAX = 1000

export interface NodeMetricsInit {
  nodeId: string
  metadata: MetadataService
  store: ExtentStore
  replication?: ReplicationService
  /** The health the failure detector gives a member (undefined: not heard of yet). */
  health: (member: string) => string | undefined
  /** This node's capacity in bytes, when known. */
  capacityBytes?: () => number | undefined
  /** The node's event log: repairs, scrub findings and moves are counted from its events. */
  events?: Pick<EventLog, 'subscribe'>
}

export class NodeMetrics implements RpcInterceptor {
  readonly name = 'metrics'
  readonly registry = new Registry()
  readonly #init: NodeMetricsInit
  readonly #requests: Counter<'method' | 'code'>
  readonly #duration: Histogram<'method'>
  readonly #bytesIn: Counter<'method'>
  readonly #bytesOut: Counter<'method'>
  readonly #leaderChanges: Counter<'group'>
  readonly #leaders = new Map<number, string | undefined>()
  #sampler: ReturnType<typeof setInterval> | undefined
  #server: Server | undefined
  readonly #fsync: Histogram
  #unsubscribe: (() => void) | undefined
  readonly #unsubscribeEvents: (() => void) | undefined

  constructor (init: NodeMetricsInit) {
    this.#init = init
    const registers = [this.registry]
    this.#requests = new Counter({
      name: 'dfs_rpc_requests_total', help: 'RPC calls this node served, by method and outcome (OK or the error name)', labelNames: ['method', 'code'], registers
    })
    this.#duration = new Histogram({
      name: 'dfs_rpc_request_duration_seconds', help: 'Time from a call\'s header to its end, by method', labelNames: ['method'], buckets: RPC_BUCKETS, registers
    })
    this.#bytesIn = new Counter({
      name: 'dfs_rpc_received_bytes_total', help: 'Bytes of the calls this node served that it received (headers and uploads), by method', labelNames: ['method'], registers
    })
    this.#bytesOut = new Counter({
      name: 'dfs_rpc_sent_bytes_total', help: 'Bytes of the calls this node served that it sent (answers and downloads), by method', labelNames: ['method'], registers
    })
    this.#leaderChanges = new Counter({
      name: 'dfs_raft_leader_changes_seen_total', help: 'Leader changes this node saw, by metadata group (sampled every second)', labelNames: ['group'], registers
    })
    const groups = (): Array<{ group: number, leader: string | undefined, term: number }> => {
      const g = init.metadata.groups?.()
      if (g !== undefined) return g.groups
      const st = init.metadata.status()
      return [{ group: 0, leader: st.leader, term: st.term }]
    }
    new Gauge({
      name: 'dfs_raft_has_leader', help: 'Whether this node knows a leader of the metadata group (1) or not (0)', labelNames: ['group'], registers,
      collect () { for (const g of groups()) this.set({ group: String(g.group) }, g.leader === undefined ? 0 : 1) }
    })
    new Gauge({
      name: 'dfs_raft_is_leader', help: 'Whether this node leads the metadata group', labelNames: ['group'], registers,
      collect () { for (const g of groups()) this.set({ group: String(g.group) }, g.leader === init.nodeId ? 1 : 0) }
    })
    new Gauge({
      name: 'dfs_raft_term', help: 'The metadata group\'s current term as this node knows it', labelNames: ['group'], registers,
      collect () { for (const g of groups()) this.set({ group: String(g.group) }, g.term) }
    })
    this.#fsync = new Histogram({
      name: 'dfs_disk_log_fsync_duration_seconds',
      help: 'Time each fsync\'d write of this node\'s Raft log took (all groups share one log)',
      buckets: [0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048, 4.096],
      registers
    })
    // the groups' counters, read at scrape time and kept as counters: each scrape adds what grew since
    const raftCounter = (name: string, help: string, pick: (s: MetadataRaftStats) => number): void => {
      const last = new Map<number, number>()
      new Counter({
        name, help, labelNames: ['group'], registers,
        collect () {
          for (const s of init.metadata.raftStats?.() ?? []) {
            const now = pick(s)
            const grew = now - (last.get(s.group) ?? 0)
            // a group opened again (a restart of the service) starts from zero: count from there
            this.inc({ group: String(s.group) }, grew >= 0 ? grew : now)
            last.set(s.group, now)
          }
        }
      })
    }
    raftCounter('dfs_raft_proposals_total', 'Proposals this node made, by metadata group', (s) => s.proposals)
    raftCounter('dfs_raft_proposals_applied_total', 'Proposals this node made that applied, by metadata group', (s) => s.proposalsApplied)
    raftCounter('dfs_raft_proposals_retried_total', 'Proposals made again because their term\'s leader lost them', (s) => s.proposalsRetried)
    raftCounter('dfs_raft_proposals_failed_total', 'Proposals of this node that ended in an error (refused, deadline, abort, the group stopping)', (s) => s.proposalsFailed ?? 0)
    raftCounter('dfs_raft_entries_applied_total', 'Log entries this node applied (everyone\'s), by metadata group', (s) => s.entriesApplied)
    new Gauge({
      name: 'dfs_raft_proposals_pending', help: 'This node\'s proposals waiting to apply, by metadata group', labelNames: ['group'], registers,
      collect () { for (const s of init.metadata.raftStats?.() ?? []) this.set({ group: String(s.group) }, s.pending) }
    })
    new Gauge({
      name: 'dfs_raft_applied_index', help: 'Index of the last operation this node applied (system group)', registers,
      collect () { this.set(init.metadata.status().appliedIndex) }
    })
    new Gauge({
      name: 'dfs_raft_commit_index', help: 'Commit index this node knows (system group)', registers,
      collect () { this.set(init.metadata.status().commitIndex) }
    })
    new Gauge({
      name: 'dfs_cluster_nodes', help: 'Members by the health this node\'s failure detector gives them', labelNames: ['health'], registers,
      collect () {
        const counts: Record<string, number> = { healthy: 0, suspected: 0, failed: 0, unknown: 0 }
        const members = init.metadata.staleRead?.((v) => v.members()) ?? []
        for (const m of members) {
          const h = m.id === init.nodeId ? 'healthy' : init.health(m.id) ?? 'unknown'
          counts[h] = (counts[h] ?? 0) + 1
        }
        for (const [health, n] of Object.entries(counts)) this.set({ health }, n)
      }
    })
    new Gauge({
      name: 'dfs_store_bytes', help: 'Bytes of extents this node stores', registers,
      async collect () { this.set((await init.store.usage({ signal: AbortSignal.timeout(COLLECT_TIMEOUT_MS) })).bytes) }
    })
    new Gauge({
      name: 'dfs_store_extents', help: 'Extent copies this node stores', registers,
      async collect () { this.set((await init.store.usage({ signal: AbortSignal.timeout(COLLECT_TIMEOUT_MS) })).extents) }
    })
    new Gauge({
      name: 'dfs_store_held_bytes', help: 'Of dfs_store_bytes, small files\' copies held in memory, not yet written (0 for a store that writes every put at once)', registers,
      collect () { this.set(init.store.held?.().bytes ?? 0) }
    })
    new Gauge({
      name: 'dfs_store_capacity_bytes', help: 'Capacity of this node\'s store (absent until known)', registers,
      collect () {
        const c = init.capacityBytes?.()
        if (c !== undefined) this.set(c)
      }
    })
    const replication = init.replication
    if (replication !== undefined) {
      // one status per scrape, shared by the gauges that show it
      let status: ReturnType<ReplicationService['status']> | undefined
      const current = async (): Promise<Awaited<ReturnType<ReplicationService['status']>>> => {
        status ??= replication.status({ signal: AbortSignal.timeout(COLLECT_TIMEOUT_MS) }).finally(() => { setImmediate(() => { status = undefined }) })
        return await status
      }
      for (const [name, help, pick] of [
        ['dfs_extents', 'Extents metadata knows', (s: { extents: number }) => s.extents],
        ['dfs_extents_under_replicated', 'Extents with fewer live copies than the replication factor', (s: { underReplicated: number }) => s.underReplicated],
        ['dfs_extents_missing', 'Extents with no live copy', (s: { missing: number }) => s.missing],
        ['dfs_repair_in_flight', 'Copies the repair coordinator is making now', (s: { repairing: number }) => s.repairing]
      ] as const) {
        new Gauge({ name, help, registers, async collect () { this.set(pick(await current())) } })
      }
      new Gauge({
        name: 'dfs_repair_queue_length', help: 'Extents the repair pass running on this node (the coordinator) has still to repair', registers,
        async collect () { this.set((await current()).repairQueued ?? 0) }
      })
      new Gauge({
        name: 'dfs_rebalance_moves', help: 'Rebalance and drain moves: recorded and not yet switched (pending, cluster-wide), executing on this node (in_flight)', labelNames: ['state'], registers,
        async collect () {
          const s = await current()
          this.set({ state: 'pending' }, s.movesRecorded ?? 0)
          this.set({ state: 'in_flight' }, s.movesInFlight ?? 0)
        }
      })
    }
    new Gauge({
      name: 'dfs_tenants', help: 'Tenants the cluster has (this node\'s applied state)', registers,
      collect () { this.set(init.metadata.staleRead?.((v) => v.tenants().length) ?? 0) }
    })
    // per-tenant usage of the largest TENANT_SERIES_MAX tenants, from this node's applied state; a
    // tenant removed (or no longer among the largest) drops out of the next scrape
    let tenants: Array<{ name: string, usedBytes: number, usedFiles: number }> | undefined
    const largest = (): Array<{ name: string, usedBytes: number, usedFiles: number }> => {
      if (tenants === undefined) {
        const all = init.metadata.staleRead?.((v) => v.tenants()) ?? []
        tenants = all.sort((a, b) => b.usedBytes - a.usedBytes || (a.name < b.name ? -1 : 1)).slice(0, TENANT_SERIES_MAX)
        setImmediate(() => { tenants = undefined })
      }
      return tenants
    }
    new Gauge({
      name: 'dfs_tenant_bytes', help: `Bytes of a tenant's files (the ${TENANT_SERIES_MAX} largest tenants)`, labelNames: ['tenant'], registers,
      collect () { this.reset(); for (const t of largest()) this.set({ tenant: t.name }, t.usedBytes) }
    })
    new Gauge({
      name: 'dfs_tenant_files', help: `Files of a tenant (the ${TENANT_SERIES_MAX} largest tenants by bytes)`, labelNames: ['tenant'], registers,
      collect () { this.reset(); for (const t of largest()) this.set({ tenant: t.name }, t.usedFiles) }
    })
    // counted from the event log as the replication service reports its work
    const repairBytes = new Counter({ name: 'dfs_repair_bytes_total', help: 'Bytes of copies this node (as repair coordinator) made and recorded', registers })
    const repairs = new Counter({ name: 'dfs_repair_copies_total', help: 'Repair copies this node coordinated, by outcome', labelNames: ['outcome'], registers })
    const scrubErrors = new Counter({ name: 'dfs_scrub_errors_total', help: 'Copies of this node the scrub found corrupt or missing', registers })
    const moves = new Counter({ name: 'dfs_rebalance_moves_total', help: 'Move attempts this node (as coordinator) ended, by outcome', labelNames: ['outcome'], registers })
    for (const outcome of ['finished', 'failed']) repairs.inc({ outcome }, 0)
    for (const outcome of ['finished', 'failed', 'cancelled']) moves.inc({ outcome }, 0)
    this.#unsubscribeEvents = init.events?.subscribe((e) => {
      switch (e.kind) {
        case 'repair.finished': repairBytes.inc(e.bytes); repairs.inc({ outcome: 'finished' }); break
        case 'repair.failed': repairs.inc({ outcome: 'failed' }); break
        case 'scrub.error': scrubErrors.inc(); break
        case 'move.finished': moves.inc({ outcome: 'finished' }); break
        case 'move.failed': moves.inc({ outcome: 'failed' }); break
        case 'move.cancelled': moves.inc({ outcome: 'cancelled' }); break
        default: break
      }
    })
  }

  /** The RPC interceptor's end of a call: one count by method and outcome, and its duration. */
  after (call: RpcCallInfo, outcome: RpcCallOutcome): void {
    this.#requests.inc({ method: call.method, code: outcome.ok ? 'OK' : outcome.error?.name ?? 'Error' })
    this.#duration.observe({ method: call.method }, outcome.durationMs / 1000)
    if (outcome.bytesIn > 0) this.#bytesIn.inc({ method: call.method }, outcome.bytesIn)
    if (outcome.bytesOut > 0) this.#bytesOut.inc({ method: call.method }, outcome.bytesOut)
  }

  /** Serves `GET /metrics` on host:port (port 0: a free one) and starts the leader sampler. */
  async start (listen: { host: string, port: number }): Promise<void> {
    this.#unsubscribe = this.#init.metadata.onLogSync?.((seconds) => { this.#fsync.observe(seconds) })
    this.#sample()
    this.#sampler = setInterval(() => { this.#sample() }, LEADER_SAMPLE_MS)
    this.#sampler.unref()
    this.#server = await listenHttp(listen, (req, res) => { void this.#serve(req, res) })
  }

  get address (): { host: string, port: number } {
    return listeningAt(this.#server, 'the metrics listener')
  }

  async stop (): Promise<void> {
    this.#unsubscribeEvents?.()
    this.#unsubscribe?.()
    this.#unsubscribe = undefined
    if (this.#sampler !== undefined) clearInterval(this.#sampler)
    this.#sampler = undefined
    const server = this.#server
    this.#server = undefined
    if (server === undefined) return
    server.closeAllConnections()
    await new Promise<void>((resolve) => { server.close(() => { resolve() }) })
  }

  #sample (): void {
    try {
      const groups = this.#init.metadata.groups?.().groups ?? [{ group: 0, leader: this.#init.metadata.status().leader }]
      for (const g of groups) {
        const before = this.#leaders.get(g.group)
        if (this.#leaders.has(g.group) && before !== g.leader && g.leader !== undefined) this.#leaderChanges.inc({ group: String(g.group) })
        else this.#leaderChanges.inc({ group: String(g.group) }, 0)
        if (g.leader !== undefined || !this.#leaders.has(g.group)) this.#leaders.set(g.group, g.leader)
      }
    } catch (err) {
      // the metadata service is not running yet (or any more): nothing to sample
      log.trace('leader sample: %s', (err as Error).message)
    }
  }

  async #serve (req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '').split('?')[0]
    if (path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('not found: metrics are at /metrics\n')
      return
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8' }).end('only GET\n')
      return
    }
    try {
      const text = await this.registry.metrics()
      res.writeHead(200, { 'content-type': this.registry.contentType })
      res.end(req.method === 'HEAD' ? undefined : text)
    } catch (err) {
      log.error('collecting metrics failed: %s', (err as Error).message)
      res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' }).end('collecting metrics failed\n')
    }
  }
}
