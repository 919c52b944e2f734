/**
 * RaftMetadataService: the MetadataService replicated with Raft over libp2p, sharded over several
 * Raft groups that share one transport (see ../shards for which key lives where).
 *
 * - Group 0, the system group, holds the cluster record, members, roles and join tokens. Groups
 *   1..G, the data groups, hold files and extents, each the shards of a contiguous range. G is
 *   chosen when the cluster is created (DATA_GROUPS_DEFAULT), recorded in the cluster record so
 *   joining nodes learn it, and in `<dir>/layout.json` so a restarted node opens its groups at once.
 *   G never changes: a node asked for another G than its data dir's or its cluster's refuses to
 *   start (ConfigError), or, when it learns the cluster's only later, stops serving with that error.
 * - Every member replicates every group (a voter or a learner in each): on the 1–7 node clusters dfs
 *   is for, the metadata fits on every node, reads are served locally after a ReadIndex round, and
 *   any node can answer for any shard. Voters grow 1 → 3 → 5 per group as the cluster grows.
 * - Leaders spread: the leader of data group g hands leadership to the group's preferred voter
 *   (voters sorted, the ((g−1) mod n)-th) once it has caught up, so with three nodes each node leads
 *   one data group. A transfer that does not happen backs off (5 s doubling to 5 min).
 * - Every group's log and hard state live in one write-ahead log per node (`raft-log`, WalLogStore;
 *   group g under the key prefix `g<g>/`), written with group commit: concurrent Readies of different groups share a batch
 *   and its fsync (a Ready still waits for its own write before sending what depends on it). Each state machine lives in memory, rebuilt at start from the group's snapshot
 *   and the committed entries after it.
 * - propose: routed by the operation (system ops to the system group, a path's ops to its shard's
 *   group, an extent's ops to the group that holds it); resolves with the result of apply here.
 * - read: linearizable: one ReadIndex round in each group the read's scope names (all when none),
 *   then the function runs on the applied states, which by then include every operation committed
 *   before the call in those groups. Each key lives in exactly one group, so this composes.
 * - errors: Unavailable (not running; data groups not yet received by a joining node), NoQuorum,
 *   DeadlineExceeded, Aborted (see RaftGroup), WrongShard (a state machine refused a misrouted op).
 */
import { mkdir, open, readFile, rename } from 'node:fs/promises'
import { join } from 'node:path'
import {
  ConfigError, DataDirLockedError, INLINE_FILE_BYTES_MAX, InvalidArgumentError, NotFoundError, TENANT_NAME_PATTERN, UnavailableError,
  errorFromWire, normalizePath, requireComposeWithinTopLevel, requireNotRoot, requireTenantName, tenantRootPath
} from '@dfs/api'
import type {
  AuditCheckpoint, AuditEntry, CallOptions, ClusterConfig, ClusterKey, ClusterRecord, DirEntry, ExtentRecord, ListDirPage, FileRecord, InlineExtent,
  JoinTokenRecord, Logger, MemberRecord, MetadataGroupInfo, MetadataMembership, MetadataRaftStats, MetadataOp, MetadataResult, MetadataService,
  MetadataServiceInit, MetadataStatus, MetadataView, PeerIdString, ReadOptions, ReadScope, Role, S3KeyRecord, StageRecord, TenantInfo, TransferOutcome, TransferRecord, UserRecord
} from '@dfs/api'
import { decodeOp, encodeOp } from '../codec.js'
import { RaftGroup } from '../group/index.js'
import type { GroupStateMachine, RaftGroupStats } from '../group/index.js'
import { ConfChangeType, LevelStorage, ProgressStateType, RaftLogDb } from '../raft/index.js'
import { MetadataStateMachine, SYSTEM_OPS } from '../state-machine/index.js'
import type { StateMachineScope } from '../state-machine/index.js'
import { RaftTransport } from '../transport/index.js'
import { SHARD_COUNT, groupOfShard, requireDataGroups, shardOfExtent, shardOfPath, shardsOfGroup } from '../shards/index.js'
import {
  DATA_GROUPS_DEFAULT, LAYOUT_FILE, OP_BYTES_MAX_DEFAULT, PROMOTE_EVERY_MS_DEFAULT, RAFT_LOG_DIR, SYSTEM_GROUP,
  TRANSFER_BACKOFF_MS_MAX, TRANSFER_BACKOFF_MS_MIN, groupPrefix
} from './constants.js'
import { changeMembership, isMember } from './change-membership.js'
import { migrateSeparateLogs } from './migrate-logs.js'

export interface RaftPeer {
  id: PeerIdString
  /** Multiaddrs at which the peer can be dialled (ignored for this node). */
  addrs: string[]
}

export interface RaftMetadataServiceInit extends MetadataServiceInit {
  network: NonNullable<MetadataServiceInit['network']>
  /**
   * The groups' initial voters, this node included. Used only when the logs are created, and not
   * when `join` is set (a joining node learns the membership from the leaders).
   */
  peers: RaftPeer[]
  /**
   * Data groups of a cluster this node creates (default 3, at most 16); ignored when joining. When
   * the data dir already belongs to a cluster, it must be that cluster's number, or be left unset.
   */
  dataGroups?: number
  /** How often the leaders check for learners to promote and leaderships to hand over (default 500 ms). */
  promoteEveryMs?: number
  /** Milliseconds per Raft tick (default 100: elections after 1–2 s without a leader). */
  tickMs?: number
  electionTick?: number
  heartbeatTick?: number
  /** Snapshot and compact every this many applied entries (default 10,000), per group. */
  snapshotEvery?: number
  /** Entries kept before a snapshot for lagging followers (default 1,000). */
  snapshotKeepEntries?: number
  /** Deadline of a propose or read without a sooner signal (default 10 s). */
  callTimeoutMs?: number
  /** Largest encoded operation (default 4 MiB). */
  opBytesMax?: number
  /** A transport shared with other services; without one the service creates, starts and stops its own. */
  transport?: RaftTransport
}

type OkResult = MetadataResult & { ok: true }
/** 'failed': the service found it must not serve (see #failWith); only stop() is left to do. */
type ServiceState = 'new' | 'starting' | 'running' | 'failed' | 'stopped'

const noop = (): void => {}
const silentLogger: Logger = Object.assign(noop, { error: noop, trace: noop, enabled: false })
const CALL_TIMEOUT_MS_DEFAULT = 10_000

type InlineSink = NonNullable<MetadataServiceInit['onInlineExtents']>
type RestoredSink = NonNullable<MetadataServiceInit['onSnapshotRestored']>

/**
 * A MetadataStateMachine of one scope behind the group's byte interface. It hands the bytes an
 * applied PutFile carries to `onInline` and settles (see GroupStateMachine.settle) once the node has
 * stored them and `onInlineSettle` made them durable; what failed is offered again at the next settle.
 */
class MetadataApplier implements GroupStateMachine<MetadataResult> {
  sm: MetadataStateMachine
  readonly #pending = new Set<Promise<void>>()
  #failed: InlineExtent[] = []

  constructor (readonly scope: StateMachineScope, private readonly onChange: () => void = noop,
    private readonly onInline?: InlineSink, private readonly log: Logger = silentLogger, private readonly onRestored?: RestoredSink,
    private readonly onInlineSettle?: () => Promise<void>) {
    this.sm = new MetadataStateMachine(scope)
  }

  apply (payload: Uint8Array, index: number): MetadataResult {
    let op: MetadataOp
    try {
      op = decodeOp(payload)
    } catch (err) {
      // Deterministic on every replica: bytes that are not CBOR are a rejected operation.
      return { ok: false, index, error: { name: 'InvalidArgument', message: `the operation is not CBOR: ${(err as Error).message}`, details: {} } }
    }
    const result = this.sm.apply(op, index)
    if (result.ok && op.type === 'PutFile' && op.inline !== undefined) {
      const inline = op.inline
      this.#store(op.extents.map((extent, i) => ({ extent, bytes: inline[i] })))
    }
    this.onChange()
    return result
  }

  #store (extents: InlineExtent[]): void {
    if (this.onInline === undefined) {
      // an operation this service cannot deliver: the commit quorum's logs hold the only copies
      this.log.error('an applied PutFile carries the bytes of %d extents and nothing stores them', extents.length)
      this.#failed.push(...extents)
      return
    }
    const p: Promise<void> = this.onInline(extents).catch((err) => {
      this.log.error('storing %d inline extents failed (offered again before the next snapshot): %s', extents.length, (err as Error).message)
      this.#failed.push(...extents)
    }).finally(() => { this.#pending.delete(p) })
    this.#pending.add(p)
  }

  async settle (): Promise<void> {
    if (this.#failed.length > 0) {
      const again = this.#failed
      this.#failed = []
      this.#store(again)
    }
    await Promise.all([...this.#pending])
    if (this.#failed.length > 0) throw new UnavailableError(`${this.#failed.length} extents an applied PutFile carried are not stored yet`)
    // stored, perhaps not yet fsync'd: durable before the snapshot ends the log's copy
    await this.onInlineSettle?.()
  }

  snapshot (): Uint8Array {
    return this.sm.snapshot()
  }

  restore (data: Uint8Array): void {
    this.sm = data.byteLength === 0 ? new MetadataStateMachine(this.scope) : MetadataStateMachine.restore(data, this.scope)
    this.onChange()
  }

  /** After a leader's snapshot: the node fetches the small files' copies that only the replaced log carried. */
  async restored (index: number, signal: AbortSignal): Promise<void> {
    if (this.onRestored === undefined || this.scope.kind !== 'data') return
    const small: ExtentRecord[] = []
    for (const id of this.sm.extentIds()) {
      const x = this.sm.getExtent(id)
      if (x !== undefined && x.size <= INLINE_FILE_BYTES_MAX) small.push(x)
    }
    if (small.length === 0) return
    this.log('group %d: snapshot at %d restored with %d small extents: fetching the copies missing here', this.scope.group, index, small.length)
    await this.onRestored(small, { signal })
  }
}

/** One group this node replicates: its number, log, driver and state machine. */
interface Replica {
  g: number
  applier: MetadataApplier
  storage: LevelStorage
  group: RaftGroup<MetadataResult>
}

/** Leadership hand-over bookkeeping of one data group on its leader. */
interface TransferState { at: number, to: PeerIdString, backoffMs: number, notBefore: number }

export class RaftMetadataService implements MetadataService {
  readonly #init: RaftMetadataServiceInit
  readonly #log: Logger
  readonly #voters: PeerIdString[]
  readonly #opBytesMax: number
  readonly #callTimeoutMs: number
  #state: ServiceState = 'new'
  #transport: RaftTransport | undefined
  #ownsTransport = false
  /** The one LevelDB holding every group's log on this node. */
  #raftLog: RaftLogDb | undefined
  #system: Replica | undefined
  /** Data groups 1..G at index g−1, once G is known and their logs are open. */
  #data: Replica[] = []
  /** G, once known (layout file, creation, or the system group's cluster record). */
  #dataGroups: number | undefined
  #opening: Promise<void> | undefined
  #dataWaiters = new Set<() => void>()
  #promoter: ReturnType<typeof setInterval> | undefined
  /** Why the service failed (state 'failed'), and its shutdown once failed. */
  #failure: ConfigError | undefined
  #failing: Promise<void> | undefined
  #promoting = false
  readonly #transfers = new Map<number, TransferState>()

  /**
   * Membership of every group (see MetadataMembership in @dfs/api). A node counts as a voter once it
   * votes in every group (a node that votes in only some would leave the others short of a quorum
   * if it and another voter failed); any other member of any group is a learner.
   */
  readonly membership: MetadataMembership = {
    members: () => {
      const states = this.#replicas().map((r) => r.group.status().confState)
      const all = new Set(states.flatMap((cs) => [...cs.voters, ...cs.learners]))
      const voters = [...all].filter((id) => states.every((cs) => cs.voters.includes(id))).sort()
      return { voters, learners: [...all].filter((id) => !voters.includes(id)).sort() }
    },
    addLearner: async (id, options) => {
      const system = this.#running().group
      const add = { type: ConfChangeType.AddLearner, node: id }
      await changeMembership(system, add, (cs) => isMember(cs, id), { signal: options?.signal })
      for (const r of await this.#dataReplicas(options?.signal)) {
        await changeMembership(r.group, add, (cs) => isMember(cs, id), { signal: options?.signal })
      }
    },
    remove: async (id, options) => {
      const system = this.#running().group
      if (!isMember(system.status().confState, id)) {
        throw new NotFoundError(`${id} is not a member of the metadata group`, { id })
      }
      const remove = { type: ConfChangeType.RemoveNode, node: id }
      // out of the data groups first: the system group's membership is what marks a member
      for (const r of await this.#dataReplicas(options?.signal)) {
        await changeMembership(r.group, remove, (cs) => !isMember(cs, id), { signal: options?.signal })
      }
      await changeMembership(system, remove, (cs) => !isMember(cs, id), { signal: options?.signal })
    }
  }

  /** The applied state of every group as one MetadataView. */
  readonly #view: MetadataView = Object.freeze({
    cluster: (): ClusterRecord | undefined => this.#systemSm().cluster(),
    members: (): MemberRecord[] => this.#systemSm().members(),
    role: (peer: PeerIdString): Role | undefined => this.#systemSm().role(peer),
    user: (peer: PeerIdString): UserRecord | undefined => this.#systemSm().user(peer),
    users: (): UserRecord[] => this.#systemSm().users(),
    tenant: (name: string): TenantInfo | undefined => {
      // a malformed name names no tenant (and has no shard to look in)
      if (typeof name !== 'string' || !TENANT_NAME_PATTERN.test(name)) return undefined
      return this.#replicaOfPath(tenantRootPath(name))?.applier.sm.tenant(name)
    },
    // each tenant lives in exactly one data group: merge and sort
    tenants: (): TenantInfo[] => this.#data.flatMap((r) => r.applier.sm.tenants()).sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0),
    joinToken: (id: string): JoinTokenRecord | undefined => this.#systemSm().joinToken(id),
    joinTokens: (): JoinTokenRecord[] => this.#systemSm().joinTokens(),
    s3Key: (accessKeyId: string): S3KeyRecord | undefined => this.#systemSm().s3Key(accessKeyId),
    s3Keys: (): S3KeyRecord[] => this.#systemSm().s3Keys(),
    audit: (): { checkpoint: AuditCheckpoint, entries: readonly AuditEntry[] } => this.#systemSm().audit(),
    clusterKey: (): ClusterKey | undefined => this.#systemSm().clusterKey(),
    config: (): ClusterConfig => this.#systemSm().config(),
    getFile: (path: string): FileRecord | undefined => {
      const p = normalizePath(path)
      return p === '/' ? undefined : this.#replicaOfPath(p)?.applier.sm.getFile(p)
    },
    getExtent: (id: string): ExtentRecord | undefined => this.#holderOfExtent(id)?.applier.sm.getExtent(id),
    list: (dir: string, page?: ListDirPage): DirEntry[] => {
      const p = normalizePath(dir)
      if (p !== '/') {
        const r = this.#replicaOfPath(p)
        if (r === undefined) throw new NotFoundError(`no directory ${p}`, { path: p })
        return r.applier.sm.list(p, page)
      }
      // each top-level name lives in exactly one group: merge their sorted pages (each group's page
      // holds at least the entries of the merged one that are its own)
      const merged = this.#data.flatMap((r) => r.applier.sm.list('/', page)).sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0)
      return page?.limit === undefined ? merged : merged.slice(0, Math.max(0, page.limit))
    },
    isDirectory: (path: string): boolean => {
      const p = normalizePath(path)
      return p === '/' || (this.#replicaOfPath(p)?.applier.sm.isDirectory(p) ?? false)
    },
    // an extent in transfer is in two groups: listed once
    extentIds: (): string[] => [...new Set(this.#data.flatMap((r) => r.applier.sm.extentIds()))],
    transfers: (): { out: TransferRecord[], in: TransferOutcome[] } => {
      const all = this.#data.map((r) => r.applier.sm.transfers())
      const byTx = (a: { tx: string }, b: { tx: string }): number => a.tx < b.tx ? -1 : a.tx > b.tx ? 1 : 0
      return { out: all.flatMap((t) => t.out).sort(byTx), in: all.flatMap((t) => t.in).sort(byTx) }
    },
    stages: (): StageRecord[] => this.#data.flatMap((r) => r.applier.sm.stages()).sort((a, b) => a.stage < b.stage ? -1 : a.stage > b.stage ? 1 : 0),
    appliedIndex: (): number => this.#systemSm().appliedIndex()
  })

  constructor (init: RaftMetadataServiceInit) {
    if (typeof init?.dir !== 'string' || init.dir.length === 0) throw new InvalidArgumentError('init.dir must be a directory path', { dir: init?.dir })
    if (typeof init.nodeId !== 'string' || init.nodeId.length === 0) throw new InvalidArgumentError('init.nodeId must be a PeerId string', { nodeId: init.nodeId })
    if (init.network === undefined || init.network.self !== init.nodeId) {
      throw new InvalidArgumentError('init.network must be the network of init.nodeId', { nodeId: init.nodeId, self: init.network?.self })
    }
    if (!Array.isArray(init.peers) || (init.peers.length === 0 && init.join !== true)) throw new InvalidArgumentError('init.peers must list the initial voters')
    const voters = [...new Set(init.peers.map((p) => p.id))].sort()
    if (voters.some((v) => typeof v !== 'string' || v.length === 0)) throw new InvalidArgumentError('every peer needs a PeerId string')
    if (init.join !== true && !voters.includes(init.nodeId)) {
      throw new InvalidArgumentError('init.peers must include this node', { nodeId: init.nodeId, peers: voters })
    }
    if (init.dataGroups !== undefined) requireDataGroups(init.dataGroups)
    const opBytesMax = init.opBytesMax ?? OP_BYTES_MAX_DEFAULT
    if (!Number.isSafeInteger(opBytesMax) || opBytesMax < 1) throw new InvalidArgumentError('opBytesMax must be a positive integer', { opBytesMax })
    this.#init = init
    this.#log = init.logger ?? silentLogger
    this.#voters = voters
    this.#opBytesMax = opBytesMax
    this.#callTimeoutMs = init.callTimeoutMs ?? CALL_TIMEOUT_MS_DEFAULT
  }

  /** The system group's counters (fsync'd batches, proposals …), for tests and benchmarks. */
  get stats (): RaftGroupStats | undefined {
    return this.#system?.group.stats
  }

  async start (options?: CallOptions): Promise<void> {
    if (this.#state === 'running') return
    if (this.#state !== 'new') throw new UnavailableError(`the metadata service is ${this.#state} and cannot be started`, { state: this.#state })
    if (options?.signal?.aborted === true) throw new UnavailableError('start was aborted')
    this.#state = 'starting'
    const init = this.#init
    try {
      await mkdir(init.dir, { recursive: true })
      await migrateSeparateLogs(init.dir, this.#log)
      const raftLog = await openRaftLog(join(init.dir, RAFT_LOG_DIR), this.#log)
      this.#raftLog = raftLog
      // data logs are created first: the system group's log is what marks a created cluster
      const creating = init.join !== true && !(await raftLog.has(groupPrefix(SYSTEM_GROUP)))
      let groups = await readLayout(join(init.dir, LAYOUT_FILE))
      const refused = groups === undefined ? undefined : this.#notAsked(groups, LAYOUT_FILE)
      if (refused !== undefined) throw refused
      if (creating && groups === undefined) {
        groups = init.dataGroups ?? DATA_GROUPS_DEFAULT
        await writeLayout(init.dir, groups)
      }
      for (const p of init.peers) {
        if (p.id !== init.nodeId && p.addrs.length > 0) await init.network.addAddresses(p.id, p.addrs)
      }
      if (init.transport !== undefined) {
        this.#transport = init.transport
      } else {
        this.#transport = new RaftTransport({ network: init.network, logger: init.logger })
        this.#ownsTransport = true
        await this.#transport.start()
      }
      // Data logs first: the system log's existence is what marks a created cluster on restart.
      if (groups !== undefined) await this.#openData(groups, creating)
      const applier = new MetadataApplier({ kind: 'system' }, () => { this.#adoptLayout() })
      const storage = await LevelStorage.openIn(raftLog, groupPrefix(SYSTEM_GROUP), init.join === true ? undefined : { confState: { voters: this.#voters, learners: [] } })
      this.#system = { g: SYSTEM_GROUP, applier, storage, group: this.#newGroup(SYSTEM_GROUP, storage, applier) }
      this.#system.group.start()
      if (groups === undefined && this.#asked() !== undefined) {
        // the cluster record may be among the entries this node had committed: apply them first, so
        // a number asked for that is not the cluster's is refused here rather than once serving
        await appliedCommitted(this.#system.group, this.#callTimeoutMs)
      }
      const conflict = this.#layoutConflict(groups)
      if (conflict !== undefined) throw conflict
      // a restarted node finds the other members where metadata last saw them
      for (const m of applier.sm.members()) {
        if (m.id !== init.nodeId && m.addrs.length > 0) await init.network.addAddresses(m.id, m.addrs).catch(() => {})
      }
      this.#promoter = setInterval(() => { void this.#tend() }, init.promoteEveryMs ?? PROMOTE_EVERY_MS_DEFAULT)
      this.#promoter.unref?.()
      this.#state = 'running'
      this.#adoptLayout()
      this.#log('replicated metadata started on %s: %s data groups, voters %o', init.nodeId, groups ?? 'unknown (joining)', this.#voters)
    } catch (err) {
      await this.#close()
      this.#state = 'new'
      throw err
    }
  }

  async stop (): Promise<void> {
    if (this.#state === 'failed') {
      this.#state = 'stopped'
      await this.#failing
      return
    }
    if (this.#state !== 'running') return
    this.#state = 'stopped'
    await this.#opening?.catch(() => {})
    await this.#close()
  }

  #newGroup (g: number, storage: LevelStorage, applier: MetadataApplier): RaftGroup<MetadataResult> {
    const init = this.#init
    if (this.#transport === undefined) throw new Error('raft metadata: the transport is not started')
    return new RaftGroup<MetadataResult>({
      id: init.nodeId,
      group: g,
      storage,
      transport: this.#transport,
      stateMachine: applier,
      tickMs: init.tickMs,
      electionTick: init.electionTick,
      heartbeatTick: init.heartbeatTick,
      snapshotEvery: init.snapshotEvery,
      snapshotKeepEntries: init.snapshotKeepEntries,
      callTimeoutMs: init.callTimeoutMs,
      proposalBytesMax: this.#opBytesMax + 64,
      logger: init.logger,
      isPeer: (id) => this.#knowsPeer(id)
    })
  }

  /** A member of any group here, or of the cluster's member list (see RaftGroupInit.isPeer). */
  #knowsPeer (id: PeerIdString): boolean {
    for (const r of this.#replicas()) {
      const cs = r.group.status().confState
      if (cs.voters.includes(id) || cs.learners.includes(id)) return true
    }
    return this.#system?.applier.sm.members().some((m) => m.id === id) ?? false
  }

  /** Opens and starts data groups 1..groups (their logs are created with the initial voters when creating). */
  async #openData (groups: number, creating: boolean): Promise<void> {
    const opened: Replica[] = []
    try {
      for (let g = 1; g <= groups; g++) {
        const applier = new MetadataApplier({ kind: 'data', group: g, groups }, noop, this.#init.onInlineExtents, this.#log, this.#init.onSnapshotRestored,
          this.#init.onInlineSettle)
        const storage = await LevelStorage.openIn(this.#requireLog(), groupPrefix(g), creating ? { confState: { voters: this.#voters, learners: [] } } : undefined)
        const replica: Replica = { g, applier, storage, group: this.#newGroup(g, storage, applier) }
        opened.push(replica)
        replica.group.start()
      }
    } catch (err) {
      for (const r of opened) { await r.group.stop(); await r.storage.close() }
      throw err
    }
    this.#data = opened
    this.#dataGroups = groups
    for (const wake of this.#dataWaiters) wake()
    this.#dataWaiters.clear()
  }

  /**
   * A joining node (or one restarted before it learnt the layout) opens the data groups once the
   * system group has given it the cluster record, which says how many there are. A record that
   * contradicts the number this node holds or was asked for fails the service (#layoutConflict).
   */
  #adoptLayout (): void {
    if (this.#state !== 'running') return
    const conflict = this.#layoutConflict(this.#dataGroups)
    if (conflict !== undefined) { this.#failWith(conflict); return }
    if (this.#dataGroups !== undefined || this.#opening !== undefined) return
    const groups = this.#system?.applier.sm.cluster()?.metadataGroups
    if (groups === undefined) return
    this.#opening = (async () => {
      await writeLayout(this.#init.dir, groups)
      if (this.#state !== 'running') return
      await this.#openData(groups, false)
      this.#log('opened %d data groups', groups)
    })().catch((err) => {
      this.#log.error('opening the data groups failed (retried on the next change): %s', (err as Error).message)
    }).finally(() => { this.#opening = undefined })
  }

  /** The number of data groups this node was asked for, when that is a requirement (not when joining). */
  #asked (): number | undefined {
    return this.#init.join === true ? undefined : this.#init.dataGroups
  }

  /** The error to refuse with when the data dir's number of data groups (recorded in `source`) is not the one asked for. */
  #notAsked (held: number, source: string): ConfigError | undefined {
    const asked = this.#asked()
    if (asked === undefined || asked === held) return undefined
    return new ConfigError(`the metadata in ${this.#init.dir} has ${held} data groups (${source}) and ${asked} were asked for: ` +
      `the number is fixed when the cluster is created, so leave --metadata-groups out or give ${held}`,
    { dir: this.#init.dir, dataGroups: held, asked, source })
  }

  /**
   * Once the system group's cluster record is known: the error to fail with if the record's number of
   * data groups is not the one asked for, or not the one `held` (opened from the layout file). Shards
   * map to groups by that number, so a node with another one would serve every path from a group the
   * other members do not keep it in.
   */
  #layoutConflict (held: number | undefined): ConfigError | undefined {
    const recorded = this.#system?.applier.sm.cluster()?.metadataGroups
    if (recorded === undefined) return undefined
    const refused = this.#notAsked(recorded, 'the cluster record')
    if (refused !== undefined || held === undefined || held === recorded) return refused
    return new ConfigError(`the metadata in ${this.#init.dir} has ${held} data groups (${LAYOUT_FILE}) and its cluster has ${recorded}: ` +
      'the data dir does not match its cluster', { dir: this.#init.dir, dataGroups: recorded, held })
  }

  /**
   * Stops serving for good: every call fails with `err` from now on, and the groups stop (the node
   * takes no part in them any more, as if it had not started). Only stop() is left to do.
   */
  #failWith (err: ConfigError): void {
    if (this.#state !== 'running') return
    this.#log.error('the metadata service stops: %s', err.message)
    this.#state = 'failed'
    this.#failure = err
    this.#failing = (async () => {
      // called from within the system group's apply: its groups stop once that has returned
      await Promise.resolve()
      await this.#opening?.catch(() => {})
      await this.#close()
    })().catch((e) => { this.#log.error('closing the failed metadata service: %s', (e as Error).message) })
  }

  /** The data groups, waiting (until the call's deadline) for a joining node to learn them. */
  async #dataReplicas (signal?: AbortSignal): Promise<Replica[]> {
    this.#running()
    if (this.#dataGroups !== undefined) return this.#data
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => { done(new UnavailableError('this node has not yet received the metadata groups from the cluster')) }, this.#callTimeoutMs)
      const onAbort = (): void => { done(new UnavailableError('aborted while waiting for the metadata groups')) }
      const wake = (): void => { done() }
      const done = (err?: Error): void => {
        clearTimeout(timer)
        signal?.removeEventListener('abort', onAbort)
        this.#dataWaiters.delete(wake)
        if (err !== undefined) reject(err); else resolve()
      }
      if (signal?.aborted === true) { onAbort(); return }
      signal?.addEventListener('abort', onAbort, { once: true })
      this.#dataWaiters.add(wake)
    })
    this.#running() // woken by a stop or a failure too
    return this.#data
  }

  /** Periodic leader duties in every group this node leads. */
  async #tend (): Promise<void> {
    if (this.#promoting || this.#state !== 'running') return
    this.#promoting = true
    try {
      // groups are independent: one waiting on a membership change must not hold up the others
      await Promise.all(this.#replicas().map(async (r) => {
        if (await this.#promoteLearners(r) || r.g === SYSTEM_GROUP) return
        this.#spreadLeadership(r)
      }))
    } finally {
      this.#promoting = false
    }
  }

  /**
   * On a group's leader: grows the voters with the cluster — 1 voter for 1–2 members, 3 for 3–4, 5
   * beyond — by promoting, one at a time, a learner that has caught up with the commit index. Larger
   * voter sets only slow writes down; the other members stay learners (thesis §4.2.1: learners first).
   * True while the voters are short of their target (the group should keep its leader meanwhile).
   */
  async #promoteLearners (r: Replica): Promise<boolean> {
    const st = r.group.status()
    if (st.leader !== this.#init.nodeId) return false
    const { voters, learners } = st.confState
    const members = voters.length + learners.length
    const target = members >= 5 ? 5 : members >= 3 ? 3 : 1
    if (voters.length >= target || learners.length === 0) return false
    // while the voters still grow, leadership stays put (a transfer would stall the promotions)
    const progress = r.group.progress() ?? {}
    const ready = learners.filter((id) => (progress[id]?.match ?? 0) >= st.commit).sort()
    if (ready.length === 0) {
      this.#log.trace('group %d: learners %o not caught up with commit %d', r.g, learners, st.commit)
      return true
    }
    try {
      // based on the learner it saw: should it have been removed meanwhile, nothing is re-added
      await r.group.proposeConfChange({ type: ConfChangeType.AddVoter, node: ready[0], basedOn: 'learner' })
      this.#log('group %d: promoted %s to voter', r.g, ready[0])
    } catch (err) {
      this.#log('group %d: promoting %s failed: %s', r.g, ready[0], (err as Error).message)
    }
    return true
  }

  /**
   * On a data group's leader: hands leadership to the group's preferred voter when that voter has
   * everything committed, so leaders (and the work of writes) spread over the nodes.
   */
  #spreadLeadership (r: Replica): void {
    const st = r.group.status()
    const me = this.#init.nodeId
    const now = Date.now()
    const t = this.#transfers.get(r.g)
    if (st.leader !== me) {
      if (t !== undefined && st.leader === t.to) this.#transfers.delete(r.g) // it worked
      return
    }
    const voters = [...st.confState.voters].sort()
    const preferred = voters[(r.g - 1) % voters.length]
    if (preferred === undefined || preferred === me) return
    if (t !== undefined && now < t.notBefore) return
    const pr = r.group.progress()?.[preferred]
    // only to a voter that answers and has everything: a transfer blocks proposals until it ends
    if (pr === undefined || !pr.recentActive || pr.match < st.commit || pr.state !== ProgressStateType.Replicate) return
    // still leading after an earlier attempt: the preferred node did not take over, so wait longer
    const backoffMs = t === undefined ? TRANSFER_BACKOFF_MS_MIN : Math.min(TRANSFER_BACKOFF_MS_MAX, t.backoffMs * 2)
    this.#transfers.set(r.g, { at: now, to: preferred, backoffMs, notBefore: now + backoffMs })
    this.#log('group %d: handing leadership to its preferred voter %s', r.g, preferred)
    r.group.transferLeadership(preferred)
  }

  /**
   * The data group holding `path` (MetadataService.groupOf); 1 before the number of groups is known
   * (an operation across groups is still refused by #route then).
   */
  groupOf (path: string): number {
    const p = normalizePath(path)
    return p === '/' ? 1 : groupOfShard(shardOfPath(p), this.#dataGroups ?? 1)
  }

  /** This node's applied state, possibly stale (see MetadataService.staleRead). */
  staleRead<T> (fn: (view: MetadataView) => T): T {
    this.#running()
    return fn(this.#view)
  }

  async #close (): Promise<void> {
    if (this.#promoter !== undefined) clearInterval(this.#promoter)
    this.#promoter = undefined
    for (const wake of this.#dataWaiters) wake()
    this.#dataWaiters.clear()
    // data groups first, then the system group (the reverse of start)
    const replicas = this.#replicas().reverse()
    this.#data = []
    this.#system = undefined
    this.#dataGroups = undefined
    for (const r of replicas) await r.group.stop()
    if (this.#ownsTransport) await this.#transport?.stop()
    this.#transport = undefined
    this.#ownsTransport = false
    for (const r of replicas) await r.storage.close()
    await this.#raftLog?.close()
    this.#raftLog = undefined
  }

  #requireLog (): RaftLogDb {
    if (this.#raftLog === undefined) throw new UnavailableError('the metadata service is not running')
    return this.#raftLog
  }

  /** Counters of every group this node runs (MetadataService.raftStats). */
  raftStats (): MetadataRaftStats[] {
    const replicas = this.#system === undefined ? this.#data : [this.#system, ...this.#data]
    return replicas.map((r) => ({
      group: r.g,
      proposals: r.group.stats.proposals,
      proposalsApplied: r.group.stats.proposalsApplied,
      proposalsRetried: r.group.stats.proposalsRetried,
      proposalsFailed: r.group.stats.proposalsFailed,
      entriesApplied: r.group.stats.entriesApplied,
      pending: r.group.pendingProposals
    }))
  }

  /** MetadataService.onLogSync: the node's shared Raft log's fsync'd batches. */
  onLogSync (listener: (seconds: number) => void): () => void {
    const log = this.#raftLog
    if (log === undefined) throw new UnavailableError('the metadata service is not running')
    return log.onSync(listener)
  }

  /** Batches the node's shared Raft log wrote, and the group writes they carried. */
  get logStats (): { batches: number, writes: number } | undefined {
    return this.#raftLog === undefined ? undefined : { ...this.#raftLog.stats }
  }

  status (): MetadataStatus {
    const st = this.#system?.group.status()
    return {
      leader: st?.leader,
      term: st?.term ?? 0,
      commitIndex: st?.commit ?? 0,
      appliedIndex: st?.applied ?? 0
    }
  }

  groups (): { shardCount: number, groups: MetadataGroupInfo[] } {
    const info = (r: Replica): MetadataGroupInfo => {
      const st = r.group.status()
      return {
        group: r.g,
        kind: r.g === SYSTEM_GROUP ? 'system' : 'data',
        shards: r.g === SYSTEM_GROUP ? [] : shardsOfGroup(r.g, this.#dataGroups ?? 1),
        voters: [...st.confState.voters].sort(),
        learners: [...st.confState.learners].sort(),
        leader: st.leader,
        term: st.term
      }
    }
    return { shardCount: SHARD_COUNT, groups: this.#replicas().map(info) }
  }

  inlineVoters (path: string): PeerIdString[] {
    if (this.#init.onInlineExtents === undefined || this.#state !== 'running') return []
    const canonical = normalizePath(path)
    const r = canonical === '/' ? undefined : this.#replicaOfPath(canonical)
    return r === undefined ? [] : [...r.group.status().confState.voters]
  }

  async propose (op: MetadataOp, options?: CallOptions): Promise<OkResult> {
    this.#running()
    if (op?.type === 'InitCluster' && op.metadataGroups === undefined && this.#dataGroups !== undefined) {
      op = { ...op, metadataGroups: this.#dataGroups }
    }
    const bytes = encodeOp(op)
    if (bytes.byteLength > this.#opBytesMax) {
      throw new InvalidArgumentError(`the operation is ${bytes.byteLength} bytes, more than ${this.#opBytesMax}`,
        { bytes: bytes.byteLength, opBytesMax: this.#opBytesMax })
    }
    try {
      decodeOp(bytes)
    } catch (err) {
      throw new InvalidArgumentError(`the operation cannot be logged: ${(err as Error).message}`)
    }
    const replica = await this.#route(op, options?.signal)
    const result = await replica.group.propose(bytes, { signal: options?.signal })
    if (!result.ok) throw errorFromWire({ ...result.error, details: { ...result.error.details, index: result.index } })
    return result
  }

  /** The group an operation belongs to (invalid fields are left to the state machine to reject). */
  async #route (op: MetadataOp, signal?: AbortSignal): Promise<Replica> {
    const type: unknown = (op as { type?: unknown } | undefined)?.type
    const system = this.#running()
    if (typeof type !== 'string' || SYSTEM_OPS.has(type)) return system
    const data = await this.#dataReplicas(signal)
    const groups = data.length
    const fields = op as unknown as Record<string, unknown>
    if (type === 'PutFile' || type === 'DeleteFile' || type === 'MakeDir' || type === 'RemoveDir' || type === 'StageExtents' || type === 'DropStage' ||
        type === 'SetFileTime') {
      const path = normalizePath(fields.path) // InvalidArgument for a malformed path
      return path === '/' ? data[0] : data[groupOfShard(shardOfPath(path), groups) - 1]
    }
    if (type === 'RenameFile' || type === 'CopyFile') {
      // one group applies it atomically; one that would span groups is refused before it is proposed
      // (a file moves between groups by a transfer: see TRANSFERS_MAX in @dfs/api)
      const from = normalizePath(fields.from)
      const to = normalizePath(fields.to)
      requireNotRoot(from, to)
      const [a, b] = [groupOfShard(shardOfPath(from), groups), groupOfShard(shardOfPath(to), groups)]
      if (a !== b) {
        throw new InvalidArgumentError(`${from} and ${to} are in different metadata groups (${a} and ${b}): one operation cannot ${type === 'CopyFile' ? 'copy' : 'rename'} across them`,
          { from, to, groups: [a, b] })
      }
      return data[a - 1]
    }
    if (type === 'BeginTransfer' || type === 'FinishTransfer' || type === 'AbortTransfer') {
      const from = normalizePath(fields.from)
      return from === '/' ? data[0] : data[groupOfShard(shardOfPath(from), groups) - 1]
    }
    if (type === 'AcceptTransfer' || type === 'RefuseTransfer' || type === 'ForgetTransfer') {
      const to = normalizePath(fields.to)
      return to === '/' ? data[0] : data[groupOfShard(shardOfPath(to), groups) - 1]
    }
    if (type === 'ComposeFile') {
      // likewise: the parts are in the top-level directory of `to`, or nothing is proposed
      const to = normalizePath(fields.to)
      const parts = Array.isArray(fields.parts) ? fields.parts.map((p) => normalizePath(p)) : []
      requireComposeWithinTopLevel(to, parts)
      return data[groupOfShard(shardOfPath(to), groups) - 1]
    }
    if (type === 'PutTenant' || type === 'RemoveTenant') {
      // a tenant's record lives with its files: in the group of its root's shard
      const name = type === 'PutTenant' ? (fields.tenant as { name?: unknown } | undefined)?.name : fields.name
      return data[groupOfShard(shardOfPath(tenantRootPath(requireTenantName(name))), groups) - 1]
    }
    const extent = fields.extent as { id?: unknown } | undefined
    const id = type === 'CreateExtent' ? extent?.id : fields.id
    if (typeof id !== 'string') return data[0]
    return (type === 'CreateExtent' ? undefined : this.#holderOfExtent(id)) ?? data[groupOfShard(shardOfExtent(id), groups) - 1]
  }

  async read<T> (fn: (view: MetadataView) => T, options?: ReadOptions): Promise<T> {
    const replicas = await this.#replicasFor(options?.scope, options?.signal)
    if (replicas.length === 1) return await replicas[0].group.read(() => fn(this.#view), { signal: options?.signal })
    await Promise.all(replicas.map(async (r) => { await r.group.read(noop, { signal: options?.signal }) }))
    return fn(this.#view)
  }

  /** The groups a read of `scope` must confirm with a ReadIndex round. */
  async #replicasFor (scope: ReadScope | undefined, signal?: AbortSignal): Promise<Replica[]> {
    const system = this.#running()
    if (scope === undefined) return [system, ...await this.#dataReplicas(signal)]
    const out = new Set<Replica>()
    if (scope.system === true) out.add(system)
    if (scope.extents === true || (scope.paths !== undefined && scope.paths.length > 0)) {
      const data = await this.#dataReplicas(signal)
      if (scope.extents === true) for (const r of data) out.add(r)
      for (const raw of scope.paths ?? []) {
        const p = normalizePath(raw)
        if (p === '/') for (const r of data) out.add(r)
        else out.add(data[groupOfShard(shardOfPath(p), data.length) - 1])
      }
    }
    if (out.size === 0) out.add(system)
    return [...out]
  }

  /** Every group this node replicates: the system group, then the data groups in order. */
  #replicas (): Replica[] {
    return this.#system !== undefined ? [this.#system, ...this.#data] : [...this.#data]
  }

  #systemSm (): MetadataStateMachine {
    return this.#running().applier.sm
  }

  #replicaOfPath (canonical: string): Replica | undefined {
    if (this.#data.length === 0) return undefined
    return this.#data[groupOfShard(shardOfPath(canonical), this.#data.length) - 1]
  }

  /**
   * The data group whose state holds extent `id` (an extent lives in its file's group). During a
   * transfer two groups hold a record: the live one (not a transfer's frozen source nor its staged
   * copy) is the extent's; while neither is (before the target accepts), the source's.
   */
  #holderOfExtent (id: string): Replica | undefined {
    if (typeof id !== 'string') return undefined
    let fallback: Replica | undefined
    for (const r of this.#data) {
      const sm = r.applier.sm
      if (sm.getExtent(id) === undefined) continue
      if (!sm.extentInTransfer(id)) return r
      if (fallback === undefined || sm.extentRefs(id) > 0) fallback = r
    }
    return fallback
  }

  #running (): Replica {
    if (this.#state === 'failed' && this.#failure !== undefined) throw new ConfigError(this.#failure.message, this.#failure.details)
    if (this.#state !== 'running' || this.#system === undefined) {
      throw new UnavailableError(`the metadata service is ${this.#state}`, { state: this.#state })
    }
    return this.#system
  }
}

async function openRaftLog (dir: string, log: Logger): Promise<RaftLogDb> {
  try {
    return await RaftLogDb.open(dir, {
      onBuffered: (reason) => { log('the Raft log in %s writes through the page cache: the file system refused O_DIRECT (%s)', dir, reason) },
      onWarning: (message) => { log.error('%s', message) }
    })
  } catch (err) {
    const code = (err as { code?: string }).code ?? (err as { cause?: { code?: string } }).cause?.code
    if (code === 'LEVEL_LOCKED' || code === 'WAL_LOCKED') {
      throw new DataDirLockedError(`the metadata directory ${dir} is in use by another process`, { dir })
    }
    throw err
  }
}

/**
 * Resolves once `group` applied the entries its log held committed when it started (no quorum needed),
 * or after `timeoutMs` whatever it applied.
 */
async function appliedCommitted (group: RaftGroup<MetadataResult>, timeoutMs: number): Promise<void> {
  const commit = group.status().commit
  const deadline = Date.now() + timeoutMs
  while (group.status().applied < commit && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}

/** The number of data groups recorded in the layout file, or undefined when there is none yet. */
async function readLayout (path: string): Promise<number | undefined> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
  let groups: unknown
  try {
    groups = (JSON.parse(text) as { dataGroups?: unknown }).dataGroups
  } catch {
    throw new InvalidArgumentError(`${path} is not JSON`, { path })
  }
  return requireDataGroups(groups as number)
}

/** Records the number of data groups durably (written aside, fsync'd, renamed) before their logs exist. */
async function writeLayout (dir: string, groups: number): Promise<void> {
  const path = join(dir, LAYOUT_FILE)
  const tmp = `${path}.tmp`
  const fh = await open(tmp, 'w', 0o600)
  try {
    await fh.writeFile(JSON.stringify({ dataGroups: groups }) + '\n')
    await fh.sync()
  } finally {
    await fh.close()
  }
  await rename(tmp, path)
  const d = await open(dir, 'r')
  try { await d.sync() } finally { await d.close() }
}
