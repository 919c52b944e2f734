import { randomUUID } from 'node:crypto'
import { mkdir, rename, stat, unlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { logger } from '@libp2p/logger'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import {
  ConfigError, UnavailableError, type ClusterRecord, type MetadataService, type PlacementPolicy,
  type RebalancePolicy, type ServiceRegistry
} from '@dfs/api'
import { RpcExtentPeers } from './extent-peers.js'
import { createHost, type Host, type NodeHost } from '../net/host.js'
import { Admission, composeGaters } from '../net/admission.js'
import { MemberLocator } from '../membership/locate.js'
import { loadOrCreateKey } from '../net/keys.js'
import { peerNetwork } from '../net/peer-network.js'
import { parseAddress } from '../net/address.js'
import { joinCluster } from './join.js'
import { ensureClusterKey } from './cluster-key.js'
import { generateClusterKey } from '../security/cluster-key.js'
import { ClusterMembership } from './membership.js'
import { CrashFault, PartitionFault } from './faults.js'
import { NodeMetrics } from './metrics.js'
import { StatusPage } from './status-page.js'
import { collectOverview, overviewMethods } from './overview.js'
import { EventLog, groupLeaders, watchLeaders } from './events.js'
import { resolveStaleTransfers } from './transfers.js'
import { RemoteExtents } from './extents.js'
import { extentMethods, extentWriteMethods } from './handlers/extent.js'
import { RpcServer, authorization } from '../net/rpc/server.js'
import { AuditRecorder } from './audit.js'
import { auditMethods } from './handlers/audit.js'
import { eventMethods } from './handlers/events.js'
import { Security, type Caller } from '../security/index.js'
import { ExtentGc, ORPHAN_SWEEP_EVERY_MS_DEFAULT } from './extent-gc.js'
import { FileService } from './files.js'
import { InlineExtents } from './inline-extents.js'
import { clusterMethods, type ClusterMethodsInit } from './handlers/cluster.js'
import { fsMethods } from './handlers/fs.js'
import { userMethods } from './handlers/users.js'
import { s3KeyMethods } from './handlers/s3-keys.js'
import { tenantMethods } from './handlers/tenants.js'
import { rateLimit } from '../security/rate-limit.js'
import { DataDirLock } from './lock.js'
import { Lifecycle } from './lifecycle.js'
import { S3Gateway } from '../gateway/s3/gateway.js'

const log = logger('dfs:node')
/** Reads of the cluster record and members need only the system group. */
const SYSTEM = { scope: { system: true } }

export interface NodeRuntimeInit {
  dataDir: string
  /** Multiaddrs to listen on. */
  listen: string[]
  name?: string
  region?: string
  /** Name of the ExtentStore implementation (`level` unless a plugin provides another). */
  store?: string
  /** Name of the MetadataService implementation. */
  metadata?: string
  registry: ServiceRegistry
  /** PeerId that becomes the first Admin if this node creates a new cluster. */
  admin: string
  /** Bytes per extent of new files. */
  extentSize?: number
  /** Addresses of cluster members (host:port or multiaddrs): where a new node asks to join. */
  peers?: string[]
  /**
   * The join token a new node presents (`dfs cluster token create`), or how to read it: read only when
   * the node joins (a member restarting on its data dir needs none, and its token file may be gone).
   */
  joinToken?: string | (() => Promise<string | undefined>)
  /** Interval of membership heartbeats. */
  heartbeatMs?: number
  /** Silence after which a member is considered Failed. */
  failureTimeoutMs?: number
  /** Metadata operations between snapshots (tests make it small to exercise snapshot catch-up). */
  metadataSnapshotEvery?: number
  /** Raft groups that own the metadata shards of a cluster this node creates (the service's default otherwise). */
  metadataGroups?: number
  /** Name of the ReplicationService implementation (`default` unless a plugin provides another). */
  replication?: string
  /** How long a member stays Failed before its copies are re-created on other nodes. */
  repairDelayMs?: number
  /** How long freed copies stay before their holders delete them (the replication service's default when absent). */
  releaseGraceMs?: number
  /** Throttle of rebalance and drain moves coordinated by this node (ReplicationServiceInit). */
  moveBytesPerSecond?: number
  /** Test-only: accept `test.partition` RPCs that cut this node off from chosen peers. */
  testFaults?: boolean
  /** Serve the S3 API on this address (port 0: a free one); absent: no S3 listener. */
  s3?: { host: string, port: number, domains?: string[], region?: string }
  /** Serve Prometheus metrics (`GET /metrics`) on this host:port (port 0: a free one). */
  metrics?: { host: string, port: number }
  /**
   * Serve the status page (src/node/status-page.ts) on this host:port (port 0: a free one), with the
   * newest audit entries when `audit`; /metrics too when `metrics` is set.
   */
  http?: { host: string, port: number, audit?: boolean }
}

/** What `<data-dir>/node.json` holds while the node serves. */
export interface NodeInfo {
  id: string
  addrs: string[]
  /** Where the S3 API listens (`host:port`), when it does. */
  s3?: string
  /** host:port of the metrics listener, when it runs. */
  metrics?: string
  /** host:port of the status page, when it runs. */
  http?: string
}

/**
 * One dfs node: owns the data dir lock, the identity key, the services the plugins provide, the
 * libp2p host and the RPC handlers, and starts and stops them in order.
 */
export class NodeRuntime {
  readonly dataDir: string
  readonly id: string
  readonly clusterId: string
  readonly #host: Host
  /** Every part started, in order: stop() and a failed start both stop them through it, in reverse. */
  readonly #life: Lifecycle
  readonly #settled: Promise<void>
  #stopping: Promise<void> | undefined

  readonly #s3: S3Gateway | undefined
  readonly #metrics: NodeMetrics | undefined
  readonly #statusPage: StatusPage | undefined

  private constructor (parts: { dataDir: string, id: string, clusterId: string, host: Host, life: Lifecycle, settled: Promise<void>, s3?: S3Gateway, metrics?: NodeMetrics, statusPage?: StatusPage }) {
    this.#statusPage = parts.statusPage
    this.#s3 = parts.s3
    this.#metrics = parts.metrics
    this.dataDir = parts.dataDir
    this.id = parts.id
    this.clusterId = parts.clusterId
    this.#host = parts.host
    this.#life = parts.life
    this.#settled = parts.settled
  }

  /** Resolves once this node's member record is current and the start-up sweep is done. */
  async settled (): Promise<void> {
    await this.#settled
  }

  static async start (init: NodeRuntimeInit): Promise<NodeRuntime> {
    await mkdir(init.dataDir, { recursive: true, mode: 0o700 })
    const lock = await DataDirLock.acquire(init.dataDir)
    const life = new Lifecycle()
    life.started('data dir lock', async () => { await lock.release() })
    try {
      const { key } = await loadOrCreateKey(join(init.dataDir, 'node.key'))
      // the registry throws UnknownService (naming what is installed) before anything is opened
      const makeStore = init.registry.get('extentStore', init.store ?? 'level')
      const makeMetadata = init.registry.get('metadata', init.metadata ?? 'raft')
      const makeReplication = init.registry.get('replication', init.replication ?? 'default')
      const faults = init.testFaults === true ? new PartitionFault() : undefined
      const crashes = init.testFaults === true ? new CrashFault() : undefined
      // strangers are admitted in restricted mode (see admission.ts); members and known identities
      // normally, once metadata can tell them apart
      const admission = new Admission({ self: peerIdFromPrivateKey(key).toString() })
      life.started('admission', () => { admission.stop() })
      let host: NodeHost
      try {
        host = await createHost({
          privateKey: key,
          listen: init.listen,
          role: 'node',
          connectionGater: composeGaters(faults?.gater(), admission.gater()),
          streamGate: admission.streamGate(),
          dhtPeerFilter: (peer) => admission.mayJoinDht(peer)
        })
      } catch (err) {
        if ((err as Error)?.name !== 'UnsupportedListenAddressesError') throw err
        throw new ConfigError(`cannot listen on ${init.listen.join(', ')}: the port is in use or the address is not on this machine`, { listen: init.listen })
      }
      life.started('libp2p host', async () => { await host.stop() })
      faults?.attach(host)
      const id = host.peerId.toString()

      const store = makeStore({ dir: join(init.dataDir, 'extents'), logger: logger('dfs:store') })
      await store.open()
      life.started('extent store', async () => { await store.close() })
      const addrs = host.getMultiaddrs().map((a) => a.toString())
      // a member that moved (restarted on another port) is looked up in the DHT when it cannot be dialled
      const locator = new MemberLocator(host)
      const locate = async (peer: string, options?: { signal?: AbortSignal }): Promise<boolean> => await locator.locate(peer, options)
      const network = peerNetwork(host, { locate })
      const metadataDir = join(init.dataDir, 'metadata')
      const fresh = !(await exists(metadataDir))
      const peers = (init.peers ?? []).map((a) => parseAddress(a))
      let joining = false
      if (fresh && peers.length > 0) {
        const token = typeof init.joinToken === 'function' ? await init.joinToken() : init.joinToken
        if (token == null) throw new ConfigError('a new node joins a cluster with --peers and a join token in DFS_JOIN_TOKEN or --join-token-file (see dfs cluster token create)')
        const reply = await joinCluster(host, peers, {
          token,
          name: init.name ?? id.slice(-8),
          region: init.region ?? 'default',
          addrs
        })
        for (const m of reply.members) if (m.id !== id) await network.addAddresses(m.id, m.addrs)
        admission.trust(reply.members.map((m) => m.id))
        // the members admitted this node's connections as a stranger's (they refused its gossip and
        // DHT streams); reconnect as the member it now is, so every protocol is accepted
        await Promise.all(host.getConnections().map(async (c) => { await c.close().catch((err: Error) => { c.abort(err) }) }))
        joining = true
        log('joined cluster %s through %s', reply.clusterId, reply.via)
      } else if (peers.length > 0) {
        // a restarted member: the peers given help it find the cluster; its own log knows the members
        await Promise.allSettled(peers.map(async (p) => { await host.dial(p, { signal: AbortSignal.timeout(5000) }) }))
      }
      // copies of small files arrive inside their commit (see FileService): stored as they are applied
      const inline = new InlineExtents({ nodeId: id, store, current: (extentId) => metadata.staleRead?.((view) => view.getExtent(extentId)) })
      const metadata: MetadataService = makeMetadata({
        dir: metadataDir, nodeId: id, logger: logger('dfs:metadata'), network, join: joining, snapshotEvery: init.metadataSnapshotEvery,
        metadataGroups: init.metadataGroups, onInlineExtents: inline.sink, onInlineSettle: inline.settle, onSnapshotRestored: inline.restored
      })
      await metadata.start()
      life.started('metadata', async () => { await metadata.stop() })
      const security = new Security({ nodeId: id, metadata })
      admission.attach(async (peer) => {
        const role = await security.roleOf(peer, { signal: AbortSignal.timeout(STANDING_TIMEOUT_MS) })
        return role === 'node' ? 'member' : role == null ? 'stranger' : 'known'
      })

      // A restarted member starts from what it has applied: the others may not be up yet (a whole
      // cluster restarting one machine at a time), so it must not wait for a quorum to serve.
      const known = !fresh && !joining && metadata.staleRead != null
        ? metadata.staleRead((view) => view.cluster())
        : undefined
      let cluster = known ?? (joining
        ? await waitForCluster(metadata)
        : await metadata.read((view) => view.cluster(), SYSTEM))
      if (cluster == null) {
        await metadata.propose({
          type: 'InitCluster',
          clusterId: randomUUID(),
          createdAtMs: Date.now(),
          admin: init.admin,
          member: { id, name: init.name ?? id.slice(-8), region: init.region ?? 'default', addrs },
          clusterKey: generateClusterKey()
        })
        cluster = await metadata.read((view) => view.cluster(), SYSTEM)
        log('created cluster %s with admin %s', cluster?.clusterId, init.admin)
      }
      if (cluster == null) throw new Error('metadata invariant broken: no cluster record after InitCluster')

      // what this node observes (dfs cluster events): membership, leaders, and below replication's work
      const events = new EventLog()
      const stopLeaderWatch = watchLeaders(events, groupLeaders(metadata))
      life.started('leader watch', stopLeaderWatch)
      const membership = new ClusterMembership({
        host, nodeId: id, clusterId: cluster.clusterId, metadata, store, name: init.name, region: init.region, dataDir: init.dataDir,
        heartbeatMs: init.heartbeatMs, failureTimeoutMs: init.failureTimeoutMs, onEvent: (e) => { events.record(e) }
      })
      await membership.refreshSelf()
      membership.start()
      life.started('membership', () => { membership.stop() })

      const gc = new ExtentGc(store, { nodeId: id })
      // listed before this node serves anyone: only these may be swept (see ExtentGc.list)
      const stored = await gc.list()
      // once a quorum answers: record this node's current addresses and name, and free the extents
      // a crash left unreferenced (both need committed metadata, so they wait for it in the background)
      const settle = new AbortController()
      // stopped after everything that serves: it then ends the member record update, the sweeps
      life.started('settle', async () => { settle.abort(); await settled })
      const settled = settleMember(metadata, gc, stored, { id, name: init.name, region: init.region, addrs }, settle.signal)
      // and while it runs, copies that stay unreferenced for hours (see ExtentGc.startPeriodic);
      // stopping the node aborts `settle` first, which ends the periodic sweep too
      gc.startPeriodic(metadata)
      // renames across metadata groups whose coordinator died: this node's own at once (it runs
      // none now), anyone's once old (see resolveStaleTransfers)
      const transfers = setInterval(() => {
        resolveStaleTransfers(metadata, { nodeId: id, signal: settle.signal }).catch((err: Error) => { log('stale transfers: %s', err.message) })
      }, ORPHAN_SWEEP_EVERY_MS_DEFAULT)
      transfers.unref()
      settle.signal.addEventListener('abort', () => { gc.stopPeriodic(); clearInterval(transfers) }, { once: true })
      // a cluster created before cluster keys gets one from its system group's leader
      void ensureClusterKey(metadata, id, settle.signal).catch((err: Error) => { log('ensuring the cluster key failed: %s', err.message) })
      // extents another node holds are read from it (members' addresses come from metadata)
      const extents = new RemoteExtents({
        host,
        nodeId: id,
        store,
        resolveAddrs: (peer) => metadata.staleRead?.((view) => view.members().find((m) => m.id === peer)?.addrs ?? []) ?? [],
        locate
      })
      life.started('remote extents', async () => { await extents.stop() })
      const extentPeers = new RpcExtentPeers({ nodeId: id, store, reader: extents })
      const policies = policyLookup(init.registry)
      const replication = makeReplication({
        nodeId: id,
        logger: logger('dfs:replication'),
        store,
        metadata,
        cluster: membership,
        peers: extentPeers,
        placement: policies.placement,
        rebalance: policies.rebalance,
        repairDelayMs: init.repairDelayMs,
        ...(init.releaseGraceMs !== undefined ? { releaseGraceMs: init.releaseGraceMs } : {}),
        moveBytesPerSecond: init.moveBytesPerSecond,
        onEvent: (e) => { events.record(e) }
      })
      await replication.start()
      life.started('replication', async () => { await replication.stop() })
      inline.attachFetcher(async (extent, options) => await replication.read(extent, options))
      const files = new FileService({
        nodeId: id, store, metadata, gc, extentSize: init.extentSize, replication, inline, peers: extentPeers, reached: crashes != null ? (p) => { crashes.reached(p) } : undefined
      })
      // the audit recorder comes first, ahead of authorization, so it sees the calls refused there too;
      // it is stopped after the RPC server (no more calls) and before metadata (its last flush)
      const audit = new AuditRecorder({ nodeId: id, metadata })
      audit.start()
      life.started('audit recorder', async () => { await audit.stop() })
      // metrics first: every call counts, also those authorization refuses
      const metrics = init.metrics === undefined
        ? undefined
        : new NodeMetrics({ nodeId: id, metadata, store, replication, events, health: (m) => membership.health(m), capacityBytes: () => membership.usage(id).capacityBytes ?? undefined })
      const rpc = new RpcServer({
        host,
        interceptors: [...(metrics !== undefined ? [metrics] : []), audit, authorization(async (peer, action, options) => { await security.authorize(peer, action, options) })]
      })
      // right after authorization: users' calls past their rate are refused before any handler runs
      rpc.use(rateLimit({ metadata, caller: async (peer) => await security.caller(peer) }))
      const caller = async (peer: string): Promise<Caller> => await security.caller(peer)
      rpc.register(...userMethods({ metadata, caller }), ...tenantMethods({ metadata }))
      rpc.register(...s3KeyMethods({ metadata, caller }))
      rpc.register(...auditMethods({ nodeId: id, metadata }), ...eventMethods(events))
      const clusterInit: ClusterMethodsInit = {
        nodeId: id,
        metadata,
        health: (m) => membership.health(m),
        usage: (m) => membership.usage(m),
        replication,
        policies: policies.names,
        testFaults: faults != null,
        askPeer: async (peer, method, params, signal) =>
          await extents.withPeer(peer, signal, async (client) => await client.call(method, params, { signal }))
      }
      rpc.register(...overviewMethods({ ...clusterInit, caller }))
      rpc.register(...fsMethods(files, async (peer, tenant, options) => await security.namespace(peer, tenant, options)), ...clusterMethods(clusterInit), ...extentMethods(store), ...extentWriteMethods(extentPeers.local), ...(faults?.methods() ?? []), ...(crashes?.methods() ?? []))
      await rpc.start()
      admission.watchCalls((peer) => rpc.callsInFlight(peer))
      life.started('rpc server', async () => { await rpc.stop() })
      // stopped before the RPC server: waiting cluster.events polls answer at once
      life.started('event polls', () => { events.stop() })

      let s3: S3Gateway | undefined
      if (init.s3 !== undefined) {
        if (metadata.staleRead == null) throw new ConfigError('the S3 API needs a metadata service that reads its applied state (staleRead)')
        const staleRead = metadata.staleRead.bind(metadata)
        s3 = new S3Gateway({
          ...init.s3,
          rpc,
          // this node's applied state: a new key works, and a revoked one is refused, as soon as it applies the change
          lookupKey: (accessKeyId) => staleRead((view) => {
            const k = view.s3Key(accessKeyId)
            return k === undefined ? undefined : { secretAccessKey: k.secretAccessKey, user: k.user }
          }),
          createdAtMs: () => staleRead((view) => view.cluster()?.createdAtMs ?? 0)
        })
        await s3.start()
        const gateway = s3
        life.started('s3 gateway', async () => { await gateway.stop() })
      }

      if (metrics !== undefined && init.metrics !== undefined) {
        await metrics.start(init.metrics)
        life.started('metrics', async () => { await metrics.stop() })
      }

      let statusPage: StatusPage | undefined
      if (init.http !== undefined) {
        // every tenant's audit entries, only when the operator asked for them (see status-page.ts)
        const audit = init.http.audit === true ? { tenant: null } : undefined
        const page = new StatusPage({ overview: async ({ signal }) => await collectOverview(clusterInit, { signal, audit }), metrics: metrics?.registry })
        await page.start(init.http)
        life.started('status page', async () => { await page.stop() })
        statusPage = page
      }

      const runtime = new NodeRuntime({ dataDir: init.dataDir, id, clusterId: cluster.clusterId, host, life, settled, s3, metrics, statusPage })
      await runtime.#writeInfo()
      return runtime
    } catch (err) {
      await life.stop()
      throw err
    }
  }

  info (): NodeInfo {
    const info: NodeInfo = {
      id: this.id,
      addrs: this.#host.getMultiaddrs().map((a) => {
        const s = a.toString()
        return s.includes('/p2p/') ? s : multiaddr(s).encapsulate(`/p2p/${this.id}`).toString()
      })
    }
    if (this.#metrics !== undefined) {
      const { host, port } = this.#metrics.address
      info.metrics = `${host.includes(':') ? `[${host}]` : host}:${port}`
    }
    if (this.#statusPage !== undefined) {
      const { host, port } = this.#statusPage.address
      info.http = `${host.includes(':') ? `[${host}]` : host}:${port}`
    }
    if (this.#s3 !== undefined) {
      const { host, port } = this.#s3.address
      info.s3 = `${host.includes(':') ? `[${host}]` : host}:${port}`
    }
    return info
  }

  async #writeInfo (): Promise<void> {
    const path = join(this.dataDir, 'node.json')
    const tmp = `${path}.${process.pid}.tmp`
    await writeFile(tmp, JSON.stringify(this.info(), null, 2) + '\n', { mode: 0o644 })
    await rename(tmp, path)
  }

  /** Stops serving (node.json goes first), then stops every part in reverse order of start. Safe to call more than once. */
  async stop (): Promise<void> {
    this.#stopping ??= (async () => {
      await unlink(join(this.dataDir, 'node.json')).catch(() => {})
      await this.#life.stop()
    })()
    await this.#stopping
  }
}

async function exists (path: string): Promise<boolean> {
  return await stat(path).then(() => true, () => false)
}

/** A joining node has the cluster record once it caught up with the leader's snapshot. */
async function waitForCluster (metadata: MetadataService): Promise<ClusterRecord> {
  const deadline = Date.now() + JOIN_CATCH_UP_TIMEOUT_MS
  let last: unknown
  while (Date.now() < deadline) {
    try {
      const cluster = await metadata.read((view) => view.cluster(), { ...SYSTEM, signal: AbortSignal.timeout(Math.max(1, deadline - Date.now())) })
      if (cluster != null) return cluster
    } catch (err) {
      last = err
    }
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  throw new UnavailableError(`joined, but did not catch up with the cluster within ${JOIN_CATCH_UP_TIMEOUT_MS} ms` +
    (last instanceof Error ? ` (${last.message})` : ''))
}

/** Deadline of telling a peer's standing when metadata has no stale read and must ask a quorum. */
const STANDING_TIMEOUT_MS = 5_000

/** How long a joining node may take to receive the metadata from the leader. */
const JOIN_CATCH_UP_TIMEOUT_MS = 60_000

/**
 * Brings this node's member record up to date (addresses change with every restart on port 0) and
 * sweeps unreferenced extents, retrying until metadata answers or `signal` aborts. Never throws.
 */
async function settleMember (metadata: MetadataService, gc: ExtentGc, stored: string[], me: { id: string, name?: string, region?: string, addrs: string[] }, signal: AbortSignal): Promise<void> {
  for (let attempt = 0; !signal.aborted; attempt++) {
    try {
      const self = await metadata.read((view) => view.members().find((m) => m.id === me.id), { ...SYSTEM, signal })
      const changed = self == null || self.addrs.join() !== me.addrs.join() ||
        (me.name != null && self.name !== me.name) || (me.region != null && self.region !== me.region)
      if (changed) {
        await metadata.propose({
          type: 'PutMember',
          member: { id: me.id, name: me.name ?? self?.name ?? me.id.slice(-8), region: me.region ?? self?.region ?? 'default', addrs: me.addrs }
        }, { signal })
      }
      await gc.sweep(metadata, stored)
      await resolveStaleTransfers(metadata, { nodeId: me.id, mine: true, signal })
      return
    } catch (err) {
      if (signal.aborted) return
      log('settling member record (attempt %d): %s', attempt + 1, (err as Error).message)
      await new Promise((resolve) => setTimeout(resolve, Math.min(5000, 250 * 2 ** attempt)).unref())
    }
  }
}

/** Placement and rebalance policies by name, built once each from the plugins that provide them. */
function policyLookup (registry: ServiceRegistry): {
  placement: (name: string) => PlacementPolicy
  rebalance: (name: string) => RebalancePolicy
  names: (kind: 'placement' | 'rebalance') => string[]
} {
  const placements = new Map<string, PlacementPolicy>()
  const rebalances = new Map<string, RebalancePolicy>()
  const policyLog = logger('dfs:policy')
  return {
    placement: (name) => {
      let p = placements.get(name)
      if (p === undefined) { p = registry.get('placement', name)({ logger: policyLog }); placements.set(name, p) }
      return p
    },
    rebalance: (name) => {
      let p = rebalances.get(name)
      if (p === undefined) { p = registry.get('rebalance', name)({ logger: policyLog }); rebalances.set(name, p) }
      return p
    },
    names: (kind) => registry.names(kind)
  }
}

