/**
 * RaftMetadataService: the MetadataService replicated with Raft over libp2p, for ONE group whose
 * initial voters are a static list (joining by token and several groups come later).
 *
 * - The Raft log and hard state live in LevelDB under `<dir>/raft` (LevelStorage: one fsync'd batch
 *   per Ready). The MetadataStateMachine lives in memory: on start it is rebuilt from the Raft snapshot
 *   and the committed entries after it; every `snapshotEvery` applied entries its snapshot becomes the
 *   Raft snapshot and the log before it is compacted.
 * - propose: the operation is CBOR-encoded (only bytes that decode again are proposed), replicated,
 *   and the call resolves with the result of apply on this node, or throws that result's typed error.
 *   Any node may propose: a follower's Raft core forwards the proposal to the leader.
 * - read: linearizable (ReadIndex), on any node.
 * - errors: Unavailable (not running, no leader during an election that outlasts the call),
 *   NoQuorum (no leader by the deadline: a minority), DeadlineExceeded, Aborted (see RaftGroup).
 */
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import {
  DataDirLockedError, InvalidArgumentError, NotFoundError, UnavailableError, errorFromWire
} from '@dfs/api'
import type {
  CallOptions, Logger, MetadataMembership, MetadataOp, MetadataResult, MetadataService, MetadataServiceInit,
  MetadataStatus, MetadataView, PeerIdString, PeerNetwork
} from '@dfs/api'
import { decodeOp, encodeOp } from '../codec.js'
import { RaftGroup } from '../group/index.js'
import type { GroupStateMachine, RaftGroupStats } from '../group/index.js'
import { ConfChangeType, LevelStorage } from '../raft/index.js'
import { MetadataStateMachine } from '../state-machine/index.js'
import { RaftTransport } from '../transport/index.js'
import { OP_BYTES_MAX_DEFAULT, PROMOTE_EVERY_MS_DEFAULT, RAFT_DIR, SYSTEM_GROUP } from './constants.js'

export interface RaftPeer {
  id: PeerIdString
  /** Multiaddrs at which the peer can be dialled (ignored for this node). */
  addrs: string[]
}

export interface RaftMetadataServiceInit extends MetadataServiceInit {
  network: PeerNetwork
  /**
   * The group's initial voters, this node included. Used only when the log is created, and not when
   * `join` is set (a joining node learns the membership from the leader's snapshot).
   */
  peers: RaftPeer[]
  /** How often the leader checks whether a learner should be promoted (default 500 ms). */
  promoteEveryMs?: number
  /** Milliseconds per Raft tick (default 100: elections after 1–2 s without a leader). */
  tickMs?: number
  electionTick?: number
  heartbeatTick?: number
  /** Snapshot and compact every this many applied entries (default 10,000). */
  snapshotEvery?: number
  /** Entries kept before a snapshot for lagging followers (default 1,000). */
  snapshotKeepEntries?: number
  /** Deadline of a propose or read without a sooner signal (default 10 s). */
  callTimeoutMs?: number
  /** Largest encoded operation (default 4 MiB). */
  opBytesMax?: number
  /** A transport shared with other groups; without one the service creates, starts and stops its own. */
  transport?: RaftTransport
}

type OkResult = MetadataResult & { ok: true }
type ServiceState = 'new' | 'starting' | 'running' | 'stopped'

const noop = (): void => {}
const silentLogger: Logger = Object.assign(noop, { error: noop, trace: noop, enabled: false })

/** The MetadataStateMachine behind the group's byte interface. */
class MetadataApplier implements GroupStateMachine<MetadataResult> {
  sm = new MetadataStateMachine()

  apply (payload: Uint8Array, index: number): MetadataResult {
    let op: MetadataOp
    try {
      op = decodeOp(payload)
    } catch (err) {
      // Deterministic on every replica: bytes that are not CBOR are a rejected operation.
      return { ok: false, index, error: { name: 'InvalidArgument', message: `the operation is not CBOR: ${(err as Error).message}`, details: {} } }
    }
    return this.sm.apply(op, index)
  }

  snapshot (): Uint8Array {
    return this.sm.snapshot()
  }

  restore (data: Uint8Array): void {
    this.sm = data.byteLength === 0 ? new MetadataStateMachine() : MetadataStateMachine.restore(data)
  }
}

export class RaftMetadataService implements MetadataService {
  readonly #init: RaftMetadataServiceInit
  readonly #log: Logger
  readonly #voters: PeerIdString[]
  readonly #opBytesMax: number
  #state: ServiceState = 'new'
  #storage: LevelStorage | undefined
  #transport: RaftTransport | undefined
  #ownsTransport = false
  #group: RaftGroup<MetadataResult> | undefined
  readonly #applier = new MetadataApplier()
  #promoter: ReturnType<typeof setInterval> | undefined
  #promoting = false

  /** Membership of the metadata group (see MetadataMembership in @dfs/api). */
  readonly membership: MetadataMembership = {
    members: () => {
      const cs = this.#group?.status().confState ?? { voters: [], learners: [] }
      return { voters: [...cs.voters].sort(), learners: [...cs.learners].sort() }
    },
    addLearner: async (id, options) => {
      const group = this.#running()
      const cs = group.status().confState
      if (cs.voters.includes(id) || cs.learners.includes(id)) return
      await group.proposeConfChange({ type: ConfChangeType.AddLearner, node: id }, { signal: options?.signal })
    },
    remove: async (id, options) => {
      const group = this.#running()
      const cs = group.status().confState
      if (!cs.voters.includes(id) && !cs.learners.includes(id)) {
        throw new NotFoundError(`${id} is not a member of the metadata group`, { id })
      }
      await group.proposeConfChange({ type: ConfChangeType.RemoveNode, node: id }, { signal: options?.signal })
    }
  }

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
    const opBytesMax = init.opBytesMax ?? OP_BYTES_MAX_DEFAULT
    if (!Number.isSafeInteger(opBytesMax) || opBytesMax < 1) throw new InvalidArgumentError('opBytesMax must be a positive integer', { opBytesMax })
    this.#init = init
    this.#log = init.logger ?? silentLogger
    this.#voters = voters
    this.#opBytesMax = opBytesMax
  }

  /** The group's counters (fsync'd batches, proposals …), for tests and benchmarks. */
  get stats (): RaftGroupStats | undefined {
    return this.#group?.stats
  }

  async start (options?: CallOptions): Promise<void> {
    if (this.#state === 'running') return
    if (this.#state !== 'new') throw new UnavailableError(`the metadata service is ${this.#state} and cannot be started`, { state: this.#state })
    if (options?.signal?.aborted === true) throw new UnavailableError('start was aborted')
    this.#state = 'starting'
    const init = this.#init
    try {
      await mkdir(init.dir, { recursive: true })
      try {
        this.#storage = await LevelStorage.open(join(init.dir, RAFT_DIR),
          init.join === true ? undefined : { confState: { voters: this.#voters, learners: [] } })
      } catch (err) {
        const cause = (err as { cause?: { code?: string } }).cause
        if (cause?.code === 'LEVEL_LOCKED') {
          throw new DataDirLockedError(`the metadata directory ${init.dir} is in use by another process`, { dir: init.dir })
        }
        throw err
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
      this.#group = new RaftGroup<MetadataResult>({
        id: init.nodeId,
        group: SYSTEM_GROUP,
        storage: this.#storage,
        transport: this.#transport,
        stateMachine: this.#applier,
        tickMs: init.tickMs,
        electionTick: init.electionTick,
        heartbeatTick: init.heartbeatTick,
        snapshotEvery: init.snapshotEvery,
        snapshotKeepEntries: init.snapshotKeepEntries,
        callTimeoutMs: init.callTimeoutMs,
        proposalBytesMax: this.#opBytesMax + 64,
        logger: init.logger
      })
      this.#group.start()
      // a restarted node finds the other members where metadata last saw them
      for (const m of this.#applier.sm.members()) {
        if (m.id !== init.nodeId && m.addrs.length > 0) await init.network.addAddresses(m.id, m.addrs).catch(() => {})
      }
      this.#promoter = setInterval(() => { void this.#promoteLearners() }, init.promoteEveryMs ?? PROMOTE_EVERY_MS_DEFAULT)
      this.#promoter.unref?.()
      this.#state = 'running'
      this.#log('replicated metadata started on %s with voters %o', init.nodeId, this.#voters)
    } catch (err) {
      await this.#close()
      this.#state = 'new'
      throw err
    }
  }

  async stop (): Promise<void> {
    if (this.#state !== 'running') return
    this.#state = 'stopped'
    await this.#close()
  }

  /**
   * On the leader: grows the voters with the cluster — 1 voter for 1–2 members, 3 for 3–4, 5 beyond —
   * by promoting, one at a time, a learner that has caught up with the commit index. Larger voter sets
   * only slow writes down; the other members stay learners (thesis §4.2.1: learners first).
   */
  async #promoteLearners (): Promise<void> {
    const group = this.#group
    if (this.#promoting || this.#state !== 'running' || group === undefined) return
    const st = group.status()
    if (st.leader !== this.#init.nodeId) return
    const { voters, learners } = st.confState
    const members = voters.length + learners.length
    const target = members >= 5 ? 5 : members >= 3 ? 3 : 1
    if (voters.length >= target || learners.length === 0) return
    const progress = group.progress() ?? {}
    const ready = learners.filter((id) => (progress[id]?.match ?? 0) >= st.commit).sort()
    if (ready.length === 0) return
    this.#promoting = true
    try {
      await group.proposeConfChange({ type: ConfChangeType.AddVoter, node: ready[0] })
      this.#log('promoted %s to voter', ready[0])
    } catch (err) {
      this.#log('promoting %s failed: %s', ready[0], (err as Error).message)
    } finally {
      this.#promoting = false
    }
  }

  /** This node's applied state, possibly stale (see MetadataService.staleRead). */
  staleRead<T> (fn: (view: MetadataView) => T): T {
    this.#running()
    return fn(this.#applier.sm.view)
  }

  async #close (): Promise<void> {
    if (this.#promoter !== undefined) clearInterval(this.#promoter)
    this.#promoter = undefined
    await this.#group?.stop()
    this.#group = undefined
    if (this.#ownsTransport) await this.#transport?.stop()
    this.#transport = undefined
    this.#ownsTransport = false
    await this.#storage?.close()
    this.#storage = undefined
  }

  status (): MetadataStatus {
    const st = this.#group?.status()
    return {
      leader: st?.leader,
      term: st?.term ?? 0,
      commitIndex: st?.commit ?? 0,
      appliedIndex: st?.applied ?? 0
    }
  }

  async propose (op: MetadataOp, options?: CallOptions): Promise<OkResult> {
    const group = this.#running()
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
    const result = await group.propose(bytes, { signal: options?.signal })
    if (!result.ok) throw errorFromWire({ ...result.error, details: { ...result.error.details, index: result.index } })
    return result
  }

  async read<T> (fn: (view: MetadataView) => T, options?: CallOptions): Promise<T> {
    const group = this.#running()
    return await group.read(() => fn(this.#applier.sm.view), { signal: options?.signal })
  }

  #running (): RaftGroup<MetadataResult> {
    if (this.#state !== 'running' || this.#group === undefined) {
      throw new UnavailableError(`the metadata service is ${this.#state}`, { state: this.#state })
    }
    return this.#group
  }
}
