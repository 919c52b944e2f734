/**
 * The metadata state machine: files, extents, members, users, tenants, join tokens, the audit log and
 * the cluster record.
 *
 * `apply(op, index)` is deterministic: it reads no clock, no random source and does no I/O, so every
 * replica that applies the same operations in the same order holds the same state and returns the same
 * results. How operations get committed (a local log, or Raft groups) is not this class's concern.
 *
 * Operations are untrusted (a buggy or malicious peer may have proposed them): each handler first
 * validates every field and checks every precondition, and only then mutates. A rejected operation is
 * an ordinary, deterministic outcome — `{ ok: false, index, error }` — that changes nothing except the
 * applied index. A broken invariant found while mutating is a bug and throws a plain Error.
 *
 * Files live in a flat namespace with implicit directories (like an object store), with POSIX-like
 * conflict rules: a directory exists while some file or explicit directory lies under it, or while it
 * is explicit itself (MakeDir, until RemoveDir); a file may not sit at a directory's path, and no
 * ancestor of a file or directory may be a file. `/` is always a directory.
 */
import {
  AlreadyExistsError, DfsError, DirectoryNotEmptyError, FailedPreconditionError, InvalidArgumentError, InvalidTokenError, IsADirectoryError,
  NotADirectoryError, NotFoundError, QuotaExceededError, TokenExpiredError, WrongShardError, AUDIT_BATCH_MAX, AUDIT_GENESIS_HASH,
  AUDIT_RETENTION_MAX, AUDIT_RETENTION_MIN, CLUSTER_CONFIG_DEFAULTS, COMPOSE_PARTS_MAX, COMPRESSION_SETTINGS, isCompressionSetting, EXPLICIT_DIRS_MAX, RENAME_FILES_MAX, S3_KEYS_MAX,
  STAGE_BATCH_MAX, STAGES_MAX, TENANT_MARKER, TRANSFERS_MAX, auditEntryHash, baseName, errorToWire, fromInternalPath, normalizePath, parentPath,
  requireComposeWithinTopLevel, requireFileMeta, requireNotRoot, tenantRootPath
} from '@dfs/api'
import type {
  AuditCheckpoint, AuditEntry, ClusterConfig, ClusterKey, ClusterRecord, DirEntry, ExtentMove, ExtentRecord, FileRecord, JoinTokenRecord,
  ListDirPage, MemberRecord, MetadataOp, MetadataResult, MetadataView, PeerIdString, Role, S3KeyRecord, StageRecord, TenantInfo, TenantRecord,
  TransferOutcome, TransferRecord, UserRecord
} from '@dfs/api'
import { decodeCbor, encodeCbor } from '../codec.js'
import { DATA_GROUPS_MAX, groupOfShard, shardOfExtent, shardOfPath } from '../shards/index.js'
import { CLUSTER_ID_LENGTH_MAX, FILE_EXTENTS_MAX, JOIN_TOKENS_MAX, REQUEST_RATE_MAX, TENANTS_MAX, USERS_MAX } from './limits.js'
import {
  field, requireAccessKeyId, requireArray, requireAuditEntry, requireAuditHash, requireAuditRecord, requireClusterKey, requireExtent, requireExtentId,
  requireInline, requireInteger, requireJoinToken, requireMember, requirePath, requirePeerId, requireRecord, requireReplicas, requireRole,
  requireS3Key, requireString, requireTenant, requireTenantField, requireTokenId
} from './validate.js'
import type { Fields } from './validate.js'

/**
 * Version of the snapshot encoding: 2 added join tokens (version 1 snapshots are read as having
 * none), 3 the state machine's scope and the cluster's number of data groups, 4 users' tenants,
 * tenants, the audit log and the cluster key, 5 files' metadata, explicit directories and S3
 * access keys, 6 stages of puts in progress (older snapshots are read as having none), 7 shared
 * extents (a file may list an extent another lists) and cross-group transfers.
 */
export const SNAPSHOT_VERSION = 7

/**
 * Which operations a state machine accepts:
 * - `all`: every operation (the whole metadata in one log: the local service, one-group setups);
 * - `system`: cluster record, members, users, join tokens and the audit log (the system group of a
 *   sharded service);
 * - `data`: files, extents and tenants of the shards that data group `group` of `groups` owns (a
 *   tenant lives in the shard of its root, tenantRootPath, with its files).
 * An operation outside the scope is rejected with WrongShard, deterministically on every replica.
 */
export type StateMachineScope =
  | { kind: 'all' }
  | { kind: 'system' }
  | { kind: 'data', group: number, groups: number }

const ALL: StateMachineScope = Object.freeze({ kind: 'all' })

/** Operations of the system group (cluster record and key, members, users, tokens, audit log, settings). */
export const SYSTEM_OPS: ReadonlySet<string> = new Set([
  'InitCluster', 'SetClusterKey', 'PutMember', 'RemoveMember', 'SetRole', 'CreateJoinToken', 'RevokeJoinToken', 'UseJoinToken',
  'AppendAudit', 'SetConfig', 'SetDraining', 'PutS3Key', 'RevokeS3Key'
])

/** Policy names follow the service registry's rule. */
const POLICY_NAME = /^[a-z][a-z0-9-]{0,63}$/

/** Validates one setting's value; InvalidArgument names the key. */
function requireConfigValue (key: unknown, value: unknown): [keyof ClusterConfig, number | string] {
  switch (key) {
    case 'replicationFactor':
      return [key, requireInteger(value, 'value', 1, 16)]
    case 'placementPolicy':
    case 'rebalancePolicy':
      if (typeof value !== 'string' || !POLICY_NAME.test(value)) {
        throw new InvalidArgumentError(`${key} must be a policy name (lower-case letters, digits and dashes)`, { key })
      }
      return [key, value]
    case 'imbalanceThreshold':
      if (typeof value !== 'number' || !Number.isFinite(value) || !(value > 0) || value > 100) {
        throw new InvalidArgumentError('imbalanceThreshold must be a number in (0, 100]', { key })
      }
      return [key, value]
    case 'fillLimit':
      if (typeof value !== 'number' || !(value > 0 && value <= 1)) {
        throw new InvalidArgumentError('fillLimit must be a fraction in (0, 1]', { key })
      }
      return [key, value]
    case 'auditRetention':
      return [key, requireInteger(value, 'value', AUDIT_RETENTION_MIN, AUDIT_RETENTION_MAX)]
    case 'userRequestRate':
      return [key, requireInteger(value, 'value', 0, REQUEST_RATE_MAX)]
    case 'compression':
      if (!isCompressionSetting(value)) throw new InvalidArgumentError(`compression must be one of ${COMPRESSION_SETTINGS.join(', ')}`, { key })
      return [key, value]
    default:
      throw new InvalidArgumentError('unknown cluster setting', { key: typeof key === 'string' ? key.slice(0, 64) : typeof key })
  }
}

function sameScope (a: StateMachineScope, b: StateMachineScope): boolean {
  return a.kind === b.kind && (a.kind !== 'data' || (b.kind === 'data' && a.group === b.group && a.groups === b.groups))
}

function describeScope (scope: StateMachineScope): string {
  return scope.kind === 'data' ? `data group ${scope.group} of ${scope.groups}` : `${scope.kind} scope`
}

type EntryType = 'file' | 'dir'
type OkResult = MetadataResult & { ok: true }

function invariant (condition: boolean, message: string): asserts condition {
  if (!condition) {
    throw new Error(`metadata state machine invariant broken: ${message}`)
  }
}

/** Orders strings by UTF-16 code units, independent of locale. */
function compareStrings (a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}

function joinPath (dir: string, name: string): string {
  return dir === '/' ? `/${name}` : `${dir}/${name}`
}

/** Proper ancestors of a canonical path, nearest first, without `/`. */
function * ancestors (path: string): Generator<string> {
  for (let p = parentPath(path); p !== '/'; p = parentPath(p)) {
    yield p
  }
}

export class MetadataStateMachine implements MetadataView {
  /** Set once by InitCluster; never changes afterwards. */
  #cluster: ClusterRecord | undefined
  /** Members by PeerId. */
  readonly #members = new Map<PeerIdString, MemberRecord>()
  /** Grants by PeerId; a peer without an entry has no role. At most USERS_MAX. */
  readonly #users = new Map<PeerIdString, UserRecord>()
  /** Tenants by name (in the data group that owns the shard of each tenant's root). At most TENANTS_MAX. */
  readonly #tenants = new Map<string, TenantRecord>()
  /**
   * Usage by tenant name: the sum of sizes and the count of the files under each tenant root that
   * holds any. Derived from #files alone (kept by #insertFile and DeleteFile, rebuilt on restore), so
   * it is exact whatever the history, also for files whose tenant record is gone or not yet made.
   */
  readonly #usage = new Map<string, { bytes: number, files: number }>()
  /** The retained audit log, oldest first, from #auditHead on (entries before it are dropped). */
  #auditEntries: AuditEntry[] = []
  #auditHead = 0
  /** The last dropped audit entry (genesis when none was dropped). */
  #auditCheckpoint: AuditCheckpoint = Object.freeze({ seq: 0, hash: AUDIT_GENESIS_HASH })
  /** The cluster key pair, set once (InitCluster or SetClusterKey). */
  #clusterKey: ClusterKey | undefined
  /** Cluster settings that differ from CLUSTER_CONFIG_DEFAULTS (set by SetConfig). */
  readonly #config = new Map<keyof ClusterConfig, number | string>()
  /** S3 access keys by id; at most S3_KEYS_MAX, each of a peer that had a role when it was made (SetRole revoking drops them). */
  readonly #s3Keys = new Map<string, S3KeyRecord>()
  /** Join tokens by id; none has expired before the creation time of the newest one. */
  readonly #tokens = new Map<string, JoinTokenRecord>()
  /** Current file versions by canonical path. No key is also a key of #dirs. */
  readonly #files = new Map<string, FileRecord>()
  /** Every extent record by id: those of files and standalone ones (CreateExtent). */
  readonly #extents = new Map<string, ExtentRecord>()
  /**
   * Extent id → how many times current file versions list it (a file may list an extent another
   * lists: see CopyFileOp in @dfs/api). Every key is in #extents; a record leaves with its last
   * reference (its bytes are then freed) unless a stage lists it.
   */
  readonly #refs = new Map<string, number>()
  /**
   * Stages of puts in progress by id (see STAGE_BATCH_MAX in @dfs/api); at most STAGES_MAX, each
   * listing at most FILE_EXTENTS_MAX extents, every one in #extents, in #staged and not in #refs.
   * A stage with `transfer` holds another group's extent records for a transfer (TRANSFERS_MAX).
   */
  readonly #stages = new Map<string, StageRecord>()
  /** Extent id → id of the stage that lists it. No key is also a key of #refs. */
  readonly #staged = new Map<string, string>()
  /** Transfers out of this group by tx (BeginTransfer); at most TRANSFERS_MAX, each of a distinct file in #files. */
  readonly #outgoing = new Map<string, TransferRecord>()
  /** Path of a file being transferred out → its tx: frozen (no operation changes it until the transfer ends). */
  readonly #frozen = new Map<string, string>()
  /** Extent id of a frozen file → its tx; each such extent has exactly one reference. */
  readonly #frozenExtents = new Map<string, string>()
  /** Outcomes of transfers into this group by tx (AcceptTransfer, RefuseTransfer), until ForgetTransfer; at most TRANSFERS_MAX. */
  readonly #incoming = new Map<string, TransferOutcome>()
  /**
   * Directory path → its direct children (name → type). `/` is always present; any other directory is
   * present exactly while it has at least one child or is in #explicit.
   */
  readonly #dirs = new Map<string, Map<string, EntryType>>([['/', new Map()]])
  /** Explicit directories (MakeDir): each is a key of #dirs, never `/` nor a tenant's root. At most EXPLICIT_DIRS_MAX. */
  readonly #explicit = new Set<string>()
  /** Cache of each directory's child names in sorted order; dropped whenever the children change. */
  readonly #sortedNames = new Map<string, string[]>()
  /** Index of the last applied operation; strictly increasing. */
  #applied = 0
  /** Which operations this state machine accepts (fixed for its life, recorded in snapshots). */
  readonly scope: StateMachineScope

  constructor (scope: StateMachineScope = ALL) {
    if (scope.kind === 'data' && (!Number.isSafeInteger(scope.groups) || scope.groups < 1 || scope.groups > DATA_GROUPS_MAX ||
        !Number.isSafeInteger(scope.group) || scope.group < 1 || scope.group > scope.groups)) {
      throw new InvalidArgumentError('a data scope needs 1 <= group <= groups <= ' + DATA_GROUPS_MAX, { ...scope })
    }
    this.scope = Object.freeze({ ...scope })
  }

  /** A read-only view of this state (without `apply`), for handing to readers. */
  readonly view: MetadataView = Object.freeze({
    cluster: () => this.cluster(),
    members: () => this.members(),
    role: (peer: PeerIdString) => this.role(peer),
    user: (peer: PeerIdString) => this.user(peer),
    users: () => this.users(),
    tenant: (name: string) => this.tenant(name),
    tenants: () => this.tenants(),
    joinToken: (id: string) => this.joinToken(id),
    joinTokens: () => this.joinTokens(),
    audit: () => this.audit(),
    clusterKey: () => this.clusterKey(),
    config: () => this.config(),
    getFile: (path: string) => this.getFile(path),
    getExtent: (id: string) => this.getExtent(id),
    list: (dir: string, page?: ListDirPage) => this.list(dir, page),
    isDirectory: (path: string) => this.isDirectory(path),
    s3Key: (accessKeyId: string) => this.s3Key(accessKeyId),
    s3Keys: () => this.s3Keys(),
    extentIds: () => this.extentIds(),
    stages: () => this.stages(),
    transfers: () => this.transfers(),
    appliedIndex: () => this.appliedIndex()
  })

  // ---------------------------------------------------------------------------------------------
  // apply

  /**
   * Applies the operation committed at `index` (which must be greater than the applied index: that
   * is the caller's invariant, not untrusted input). Never throws for a bad operation.
   */
  apply (op: MetadataOp, index: number): MetadataResult {
    invariant(Number.isSafeInteger(index), `index ${index} is not an integer`)
    invariant(index > this.#applied, `index ${index} is not after the applied index ${this.#applied}`)
    let result: MetadataResult
    try {
      result = this.#dispatch(op, index)
    } catch (err) {
      if (!(err instanceof DfsError)) {
        throw err
      }
      const wire = errorToWire(err)
      result = { ok: false, index, error: { name: wire.name, message: wire.message, details: wire.details ?? {} } }
    }
    this.#applied = index
    return result
  }

  #dispatch (input: unknown, index: number): OkResult {
    const op = requireRecord(input, 'op')
    const type = field(op, 'type')
    this.#checkScope(op, type)
    switch (type) {
      case 'InitCluster': return this.#initCluster(op, index)
      case 'PutMember': return this.#putMember(op, index)
      case 'RemoveMember': return this.#removeMember(op, index)
      case 'SetClusterKey': return this.#setClusterKey(op, index)
      case 'SetRole': return this.#setRole(op, index)
      case 'CreateJoinToken': return this.#createJoinToken(op, index)
      case 'RevokeJoinToken': return this.#revokeJoinToken(op, index)
      case 'UseJoinToken': return this.#useJoinToken(op, index)
      case 'AppendAudit': return this.#appendAudit(op, index)
      case 'PutTenant': return this.#putTenant(op, index)
      case 'RemoveTenant': return this.#removeTenant(op, index)
      case 'SetConfig': return this.#setConfig(op, index)
      case 'CreateExtent': return this.#createExtent(op, index)
      case 'DeleteExtent': return this.#deleteExtent(op, index)
      case 'UpdateReplication': return this.#updateReplication(op, index)
      case 'MigrateExtent': return this.#migrateExtent(op, index)
      case 'StartMove': return this.#startMove(op, index)
      case 'CancelMove': return this.#cancelMove(op, index)
      case 'SetDraining': return this.#setDraining(op, index)
      case 'PutFile': return this.#putFile(op, index)
      case 'StageExtents': return this.#stageExtents(op, index)
      case 'DropStage': return this.#dropStage(op, index)
      case 'DeleteFile': return this.#deleteFile(op, index)
      case 'RenameFile': return this.#renameFile(op, index)
      case 'MakeDir': return this.#makeDir(op, index)
      case 'RemoveDir': return this.#removeDir(op, index)
      case 'ComposeFile': return this.#composeFile(op, index)
      case 'PutS3Key': return this.#putS3Key(op, index)
      case 'RevokeS3Key': return this.#revokeS3Key(op, index)
      case 'CopyFile': return this.#copyFile(op, index)
      case 'BeginTransfer': return this.#beginTransfer(op, index)
      case 'FinishTransfer': return this.#endTransfer(op, index, true)
      case 'AbortTransfer': return this.#endTransfer(op, index, false)
      case 'AcceptTransfer': return this.#acceptTransfer(op, index)
      case 'RefuseTransfer': return this.#refuseTransfer(op, index)
      case 'ForgetTransfer': return this.#forgetTransfer(op, index)
      case 'SetFileTime': return this.#setFileTime(op, index)
      default:
        throw new InvalidArgumentError('unknown operation type',
          { type: typeof type === 'string' ? type.slice(0, 64) : typeof type })
    }
  }

  /**
   * Rejects an operation this state machine's scope does not own. Validation of the fields the
   * routing needs happens here too; everything else is validated by the handler.
   */
  #checkScope (op: Fields, type: unknown): void {
    const scope = this.scope
    if (scope.kind === 'all' || typeof type !== 'string') return
    const system = SYSTEM_OPS.has(type)
    if (scope.kind === 'system') {
      if (!system) throw new WrongShardError(`${type} does not belong to the system group`, { type })
      return
    }
    if (system) throw new WrongShardError(`${type} belongs to the system group, not to ${describeScope(scope)}`, { type })
    let shard: number | undefined
    if (type === 'PutTenant' || type === 'RemoveTenant') {
      const name = type === 'PutTenant' ? field(requireRecord(field(op, 'tenant'), 'tenant'), 'name') : field(op, 'name')
      shard = shardOfPath(tenantRootPath(requireTenantField(name, type === 'PutTenant' ? 'tenant.name' : 'name')))
    } else if (type === 'PutFile' || type === 'DeleteFile' || type === 'MakeDir' || type === 'RemoveDir' || type === 'StageExtents' || type === 'DropStage' ||
        type === 'SetFileTime') {
      const path = requirePath(field(op, 'path'), 'path')
      if (path === '/') return // rejected by the handler
      shard = shardOfPath(path)
    } else if (type === 'RenameFile' || type === 'CopyFile') {
      // both paths in this group: one group applies it atomically
      const from = requirePath(field(op, 'from'), 'from')
      const to = requirePath(field(op, 'to'), 'to')
      if (from === '/' || to === '/') return // rejected by the handler
      this.#requireShardHere(type, shardOfPath(to))
      shard = shardOfPath(from)
    } else if (type === 'BeginTransfer' || type === 'FinishTransfer' || type === 'AbortTransfer') {
      const from = requirePath(field(op, 'from'), 'from')
      if (from === '/') return // rejected by the handler
      shard = shardOfPath(from)
    } else if (type === 'AcceptTransfer' || type === 'RefuseTransfer' || type === 'ForgetTransfer') {
      const to = requirePath(field(op, 'to'), 'to')
      if (to === '/') return // rejected by the handler
      shard = shardOfPath(to)
    } else if (type === 'ComposeFile') {
      // the parts are in the same shard or the handler rejects the operation (requireComposeWithinTopLevel)
      const to = requirePath(field(op, 'to'), 'to')
      if (to === '/') return // rejected by the handler
      shard = shardOfPath(to)
    } else if (type === 'CreateExtent') {
      shard = shardOfExtent(requireExtent(field(op, 'extent'), 'extent').id)
    }
    if (shard !== undefined) this.#requireShardHere(type, shard)
  }

  /** WrongShard unless this (data) state machine owns `shard`. */
  #requireShardHere (type: string, shard: number): void {
    const scope = this.scope
    if (scope.kind !== 'data' || groupOfShard(shard, scope.groups) === scope.group) return
    throw new WrongShardError(`${type} is for shard ${shard}, owned by data group ${groupOfShard(shard, scope.groups)}, not by ${describeScope(scope)}`,
      { type, shard, group: groupOfShard(shard, scope.groups) })
  }

  /** Whether this state machine holds every path of `shard` (the `all` scope holds all). */
  #holdsShard (shard: number): boolean {
    const scope = this.scope
    return scope.kind === 'all' || (scope.kind === 'data' && groupOfShard(shard, scope.groups) === scope.group)
  }

  #initCluster (op: Fields, index: number): OkResult {
    const clusterId = requireString(field(op, 'clusterId'), 'clusterId', 1, CLUSTER_ID_LENGTH_MAX)
    const createdAtMs = requireInteger(field(op, 'createdAtMs'), 'createdAtMs', 0, Number.MAX_SAFE_INTEGER)
    const admin = requirePeerId(field(op, 'admin'), 'admin')
    const member = requireMember(field(op, 'member'), 'member')
    const rawGroups = field(op, 'metadataGroups')
    const groups = rawGroups === undefined ? undefined : requireInteger(rawGroups, 'metadataGroups', 1, DATA_GROUPS_MAX)
    const rawKey = field(op, 'clusterKey')
    const key = rawKey === undefined ? undefined : requireClusterKey(rawKey, 'clusterKey')
    if (this.#cluster !== undefined) {
      throw new AlreadyExistsError(`the cluster is already initialized as ${this.#cluster.clusterId}`,
        { clusterId: this.#cluster.clusterId })
    }
    this.#cluster = Object.freeze({
      clusterId,
      createdAtMs,
      ...(groups !== undefined ? { metadataGroups: groups } : {}),
      ...(key !== undefined ? { publicKey: key.publicKey } : {})
    })
    this.#clusterKey = key
    this.#members.set(member.id, member)
    this.#users.set(admin, Object.freeze({ id: admin, role: 'admin', tenant: null }))
    return { ok: true, index }
  }

  #setClusterKey (op: Fields, index: number): OkResult {
    const key = requireClusterKey(field(op, 'clusterKey'), 'clusterKey')
    const cluster = this.#cluster
    if (cluster === undefined) throw new NotFoundError('the cluster is not initialized')
    if (this.#clusterKey !== undefined) {
      throw new AlreadyExistsError('the cluster already has a key', { publicKey: this.#clusterKey.publicKey })
    }
    this.#cluster = Object.freeze({ ...cluster, publicKey: key.publicKey })
    this.#clusterKey = key
    return { ok: true, index }
  }

  #putMember (op: Fields, index: number): OkResult {
    const member = requireMember(field(op, 'member'), 'member')
    // a node re-announcing its addresses stays draining: only SetDraining changes that
    const draining = this.#members.get(member.id)?.draining === true
    this.#members.set(member.id, draining ? Object.freeze({ ...member, draining }) : member)
    return { ok: true, index }
  }

  #setDraining (op: Fields, index: number): OkResult {
    const id = requirePeerId(field(op, 'id'), 'id')
    const draining = field(op, 'draining')
    if (typeof draining !== 'boolean') throw new InvalidArgumentError('draining must be true or false', { field: 'draining' })
    const member = this.#members.get(id)
    if (member === undefined) throw new NotFoundError(`no member ${id}`, { id })
    const { draining: _, ...rest } = member
    this.#members.set(id, Object.freeze(draining ? { ...rest, draining } : rest))
    return { ok: true, index }
  }

  #removeMember (op: Fields, index: number): OkResult {
    const id = requirePeerId(field(op, 'id'), 'id')
    if (!this.#members.has(id)) {
      throw new NotFoundError(`no member ${id}`, { id })
    }
    this.#members.delete(id)
    return { ok: true, index }
  }

  /**
   * Grants or revokes. The tenant is only checked for its name: tenants live in data groups, out of
   * this (system) state's sight, so whoever proposes a grant checks that the tenant exists.
   */
  #setRole (op: Fields, index: number): OkResult {
    const peer = requirePeerId(field(op, 'peer'), 'peer')
    const raw = field(op, 'role')
    const role = raw === null ? null : requireRole(raw, 'role')
    const rawTenant = field(op, 'tenant')
    const tenant = rawTenant === undefined || rawTenant === null ? null : requireTenantField(rawTenant, 'tenant')
    const old = this.#users.get(peer)
    if (role === null && old === undefined) {
      throw new NotFoundError(`peer ${peer} has no role`, { peer })
    }
    if (role !== null && old === undefined && this.#users.size >= USERS_MAX) {
      throw new FailedPreconditionError(`the cluster has ${USERS_MAX} users, the most it keeps`, { usersMax: USERS_MAX })
    }
    const clusterAdmin = (u: UserRecord | undefined): boolean => u?.role === 'admin' && u.tenant === null
    if (clusterAdmin(old) && !(role === 'admin' && tenant === null)) {
      let admins = 0
      for (const u of this.#users.values()) if (clusterAdmin(u)) admins++
      if (admins <= 1) {
        throw new FailedPreconditionError(`${peer} is the last cluster-wide admin: grant another one first`, { peer })
      }
    }
    if (role === null) {
      this.#users.delete(peer)
      // an access key acts as its user: one without a role has nothing left to sign for
      for (const [id, key] of this.#s3Keys) if (key.user === peer) this.#s3Keys.delete(id)
    } else {
      this.#users.set(peer, Object.freeze({ id: peer, role, tenant }))
    }
    return { ok: true, index }
  }

  #createJoinToken (op: Fields, index: number): OkResult {
    const token = requireJoinToken(field(op, 'token'), 'token')
    if (this.#tokens.has(token.id)) {
      throw new AlreadyExistsError(`join token ${token.id} exists`, { id: token.id })
    }
    // the op's own time (chosen by the proposer) decides what has expired: apply reads no clock
    let live = 0
    for (const t of this.#tokens.values()) if (t.expiresAtMs > token.createdAtMs) live++
    if (live >= JOIN_TOKENS_MAX) {
      throw new FailedPreconditionError(`the cluster has ${JOIN_TOKENS_MAX} live join tokens, the most it keeps: revoke some first`,
        { tokensMax: JOIN_TOKENS_MAX })
    }
    for (const [id, t] of this.#tokens) {
      if (t.expiresAtMs <= token.createdAtMs) this.#tokens.delete(id)
    }
    this.#tokens.set(token.id, token)
    return { ok: true, index }
  }

  #useJoinToken (op: Fields, index: number): OkResult {
    const id = requireTokenId(field(op, 'id'), 'id')
    const peer = requirePeerId(field(op, 'peer'), 'peer')
    const nowMs = requireInteger(field(op, 'nowMs'), 'nowMs', 0, Number.MAX_SAFE_INTEGER)
    const token = this.#tokens.get(id)
    // one message for unknown, used up and revoked: a caller learns nothing about other tokens
    if (token === undefined) throw new InvalidTokenError(`join token ${id} is not valid for this cluster`, { id })
    if (token.forPeer !== undefined && token.forPeer !== peer) {
      throw new InvalidTokenError(`join token ${id} is for another node`, { id, peer })
    }
    if (nowMs >= token.expiresAtMs) {
      throw new TokenExpiredError(`join token ${id} expired`, { id, expiresAtMs: token.expiresAtMs })
    }
    if (token.usesLeft === undefined) return { ok: true, index }
    if (token.usesLeft <= 1) this.#tokens.delete(id)
    else this.#tokens.set(id, Object.freeze({ ...token, usesLeft: token.usesLeft - 1 }))
    return { ok: true, index }
  }

  #appendAudit (op: Fields, index: number): OkResult {
    const list = requireArray(field(op, 'records'), 'records', 1, AUDIT_BATCH_MAX)
    const records = list.map((r, i) => requireAuditRecord(r, `records[${i}]`))
    const last = this.#auditEntries.length > this.#auditHead ? this.#auditEntries[this.#auditEntries.length - 1] : this.#auditCheckpoint
    let prev: AuditCheckpoint = last
    for (const record of records) {
      const unhashed = { ...record, seq: prev.seq + 1 }
      const entry: AuditEntry = Object.freeze({ ...unhashed, hash: auditEntryHash(prev.hash, unhashed) })
      this.#auditEntries.push(entry)
      prev = entry
    }
    this.#trimAudit()
    return { ok: true, index }
  }

  /** Drops the oldest audit entries past the retention setting; the last dropped becomes the checkpoint. */
  #trimAudit (): void {
    const retention = this.config().auditRetention
    const excess = this.#auditEntries.length - this.#auditHead - retention
    if (excess <= 0) return
    this.#auditHead += excess
    const dropped = this.#auditEntries[this.#auditHead - 1]
    this.#auditCheckpoint = Object.freeze({ seq: dropped.seq, hash: dropped.hash })
    // compact once the dropped prefix outweighs the kept entries (amortised O(1) per entry)
    if (this.#auditHead > 1024 && this.#auditHead * 2 > this.#auditEntries.length) {
      this.#auditEntries = this.#auditEntries.slice(this.#auditHead)
      this.#auditHead = 0
    }
  }

  #putTenant (op: Fields, index: number): OkResult {
    const tenant = requireTenant(field(op, 'tenant'), 'tenant')
    const create = field(op, 'create')
    if (typeof create !== 'boolean') throw new InvalidArgumentError('create must be true or false', { field: 'create' })
    const exists = this.#tenants.has(tenant.name)
    if (create && exists) throw new AlreadyExistsError(`tenant ${tenant.name} exists`, { tenant: tenant.name })
    if (!create && !exists) throw new NotFoundError(`tenant ${tenant.name} does not exist`, { tenant: tenant.name })
    if (create && this.#tenants.size >= TENANTS_MAX) {
      throw new FailedPreconditionError(`this metadata group holds ${TENANTS_MAX} tenants, the most it keeps`, { tenantsMax: TENANTS_MAX })
    }
    this.#tenants.set(tenant.name, tenant)
    return { ok: true, index }
  }

  #removeTenant (op: Fields, index: number): OkResult {
    const name = requireTenantField(field(op, 'name'), 'name')
    if (!this.#tenants.has(name)) throw new NotFoundError(`tenant ${name} does not exist`, { tenant: name })
    const used = this.#usage.get(name)
    if (used !== undefined && used.files > 0) {
      throw new FailedPreconditionError(`tenant ${name} holds ${used.files} files: remove them first`,
        { tenant: name, usedFiles: used.files, usedBytes: used.bytes })
    }
    // no file, so only explicit directories can keep its root in existence
    if (this.#dirs.has(tenantRootPath(name))) {
      throw new FailedPreconditionError(`tenant ${name} holds directories: remove them first`, { tenant: name })
    }
    this.#tenants.delete(name)
    return { ok: true, index }
  }

  #revokeJoinToken (op: Fields, index: number): OkResult {
    const id = requireTokenId(field(op, 'id'), 'id')
    if (!this.#tokens.delete(id)) {
      throw new NotFoundError(`no join token ${id}`, { id })
    }
    return { ok: true, index }
  }

  #setConfig (op: Fields, index: number): OkResult {
    const [key, value] = requireConfigValue(field(op, 'key'), field(op, 'value'))
    if (value === CLUSTER_CONFIG_DEFAULTS[key]) this.#config.delete(key)
    else this.#config.set(key, value)
    if (key === 'auditRetention') this.#trimAudit()
    return { ok: true, index }
  }

  #createExtent (op: Fields, index: number): OkResult {
    const extent = requireExtent(field(op, 'extent'), 'extent')
    if (this.#extents.has(extent.id)) {
      throw new AlreadyExistsError(`extent ${extent.id} exists`, { id: extent.id })
    }
    this.#extents.set(extent.id, extent)
    return { ok: true, index, extent }
  }

  #deleteExtent (op: Fields, index: number): OkResult {
    const id = requireExtentId(field(op, 'id'), 'id')
    const extent = this.#requireExtentRecord(id)
    const refs = this.#refs.get(id)
    if (refs !== undefined) {
      throw new InvalidArgumentError(`extent ${id} belongs to ${refs === 1 ? 'a file' : `${refs} files`}: delete or replace them instead`,
        { id, refs })
    }
    const stage = this.#staged.get(id)
    if (stage !== undefined) {
      throw new InvalidArgumentError(`extent ${id} belongs to stage ${stage} of a put in progress: drop the stage instead`, { id, stage })
    }
    this.#requireExtentNotFrozen(id)
    this.#extents.delete(id)
    return { ok: true, index, extent, freed: [extent] }
  }

  #updateReplication (op: Fields, index: number): OkResult {
    const id = requireExtentId(field(op, 'id'), 'id')
    const replicas = requireReplicas(field(op, 'replicas'), 'replicas')
    const old = this.#requireExtentRecord(id)
    this.#requireExtentNotFrozen(id)
    const extent = withReplicas(old, replicas)
    this.#extents.set(id, extent)
    return { ok: true, index, extent }
  }

  #migrateExtent (op: Fields, index: number): OkResult {
    const id = requireExtentId(field(op, 'id'), 'id')
    const from = requirePeerId(field(op, 'from'), 'from')
    const to = requirePeerId(field(op, 'to'), 'to')
    if (from === to) {
      throw new InvalidArgumentError('from and to are the same node', { id, from, to })
    }
    const recorded = field(op, 'recorded')
    if (recorded !== undefined && recorded !== true) throw new InvalidArgumentError('recorded must be true when given', { field: 'recorded' })
    const old = this.#requireExtentRecord(id)
    this.#requireExtentNotFrozen(id)
    // the switch of a recorded move happens only while that move is still recorded: a cancelled
    // move stays cancelled even when its copy was already made (entries without the field, as
    // written before it existed, keep switching unconditionally)
    if (recorded === true && (old.move?.from !== from || old.move.to !== to)) {
      throw new NotFoundError(`extent ${id} has no move from ${from} to ${to} recorded`, { id, from, to })
    }
    const at = old.replicas.indexOf(from)
    if (at < 0) {
      throw new NotFoundError(`extent ${id} has no replica on ${from}`, { id, from, replicas: [...old.replicas] })
    }
    if (old.replicas.includes(to)) {
      throw new AlreadyExistsError(`extent ${id} already has a replica on ${to}`, { id, to, replicas: [...old.replicas] })
    }
    const replicas = old.replicas.slice()
    replicas[at] = to
    // the switch is the move's second phase: whatever move was recorded is over
    const { move: _, ...rest } = old
    const extent = Object.freeze({ ...rest, replicas: Object.freeze(replicas) as PeerIdString[] })
    this.#extents.set(id, extent)
    return { ok: true, index, extent }
  }

  #startMove (op: Fields, index: number): OkResult {
    const id = requireExtentId(field(op, 'id'), 'id')
    const move = requireMove(op, '')
    const old = this.#requireExtentRecord(id)
    this.#requireExtentNotFrozen(id)
    checkMove(id, old.replicas, move)
    if (old.move !== undefined) {
      throw new AlreadyExistsError(`extent ${id} is already moving from ${old.move.from} to ${old.move.to}`, { id, move: { ...old.move } })
    }
    const extent = Object.freeze({ ...old, move: Object.freeze(move) })
    this.#extents.set(id, extent)
    return { ok: true, index, extent }
  }

  #cancelMove (op: Fields, index: number): OkResult {
    const id = requireExtentId(field(op, 'id'), 'id')
    const old = this.#requireExtentRecord(id)
    this.#requireExtentNotFrozen(id)
    if (old.move === undefined) throw new NotFoundError(`extent ${id} has no move recorded`, { id })
    const { move: _, ...extent } = old
    this.#extents.set(id, Object.freeze(extent))
    return { ok: true, index, extent }
  }

  #putFile (op: Fields, index: number): OkResult {
    const path = requirePath(field(op, 'path'), 'path')
    const size = requireInteger(field(op, 'size'), 'size', 0, Number.MAX_SAFE_INTEGER)
    const mtimeMs = requireInteger(field(op, 'mtimeMs'), 'mtimeMs', 0, Number.MAX_SAFE_INTEGER)
    const list = requireArray(field(op, 'extents'), 'extents', 0, FILE_EXTENTS_MAX)
    const own = list.map((e, i) => requireExtent(e, `extents[${i}]`))
    // the bytes are the members' to store (see MetadataServiceInit.onInlineExtents), never the state's
    requireInline(field(op, 'inline'), own)
    const meta = requireFileMeta(field(op, 'meta'), 'meta')
    const rawStage = field(op, 'stage')
    const stage = rawStage === undefined ? undefined : this.#requireStage(requireStageId(rawStage, 'stage'), path)
    if (stage?.transfer !== undefined) {
      throw new InvalidArgumentError(`stage ${stage.stage} holds a transfer from ${stage.transfer}: AcceptTransfer commits it`, { stage: stage.stage, path })
    }
    // a staged commit: the stage's extents (validated when staged) come first, then the op's own
    const extents = stage === undefined ? own : [...stage.extents.map((id) => this.#requireExtentRecord(id)), ...own]
    if (extents.length > FILE_EXTENTS_MAX) {
      throw new InvalidArgumentError(`the file would have ${extents.length} extents, more than ${FILE_EXTENTS_MAX}`,
        { path, extents: extents.length, extentsMax: FILE_EXTENTS_MAX })
    }
    const ids = new Set<string>()
    let total = 0
    for (const e of extents) {
      if (ids.has(e.id)) {
        throw new InvalidArgumentError(`extent ${e.id} is listed twice`, { path, id: e.id })
      }
      ids.add(e.id)
      total += e.size
    }
    if (total !== size) {
      throw new InvalidArgumentError(`size ${size} is not the sum of the extent sizes (${total})`,
        { path, size, extentBytes: total })
    }
    const tenant = fromInternalPath(path).tenant
    if (tenant !== null) this.#checkTenantPut(tenant, path, size)
    this.#checkFilePath(path)
    this.#requireNotFrozen(path)
    this.#checkExtentsFree(path, own)

    // Every check passed: mutate. The stage's extents become the file's.
    if (stage !== undefined) this.#removeStage(stage)
    const old = this.#files.get(path)
    invariant(old === undefined || old.version < Number.MAX_SAFE_INTEGER, `version of ${path} overflows`)
    const file: FileRecord = Object.freeze({
      path,
      size,
      mtimeMs,
      version: old === undefined ? 1 : old.version + 1,
      extents: Object.freeze(extents.map((e) => e.id)) as string[],
      ...(meta !== undefined ? { meta } : {})
    })
    // an extent the old version lists and the new one keeps keeps its bytes (its count never reaches 0)
    const freed = this.#replaceFile(file, extents)
    return { ok: true, index, file, freed }
  }

  /** StageExtents: see the rules at STAGE_BATCH_MAX in @dfs/api (metadata.ts). */
  #stageExtents (op: Fields, index: number): OkResult {
    const id = requireStageId(field(op, 'stage'), 'stage')
    const path = requirePath(field(op, 'path'), 'path')
    if (path === '/') throw new IsADirectoryError('/ is a directory', { path })
    const node = requirePeerId(field(op, 'node'), 'node')
    const createdAtMs = requireInteger(field(op, 'createdAtMs'), 'createdAtMs', 0, Number.MAX_SAFE_INTEGER)
    const extents = requireArray(field(op, 'extents'), 'extents', 1, STAGE_BATCH_MAX).map((e, i) => requireExtent(e, `extents[${i}]`))
    const rawTransfer = field(op, 'transfer')
    const transfer = rawTransfer === undefined ? undefined : requirePath(rawTransfer, 'transfer')
    if (transfer === '/') throw new IsADirectoryError('/ is a directory', { path: transfer })
    if (transfer !== undefined && this.#incoming.has(id)) {
      throw new FailedPreconditionError(`transfer ${id} is over here`, { stage: id, tx: id })
    }
    const old = this.#stages.get(id)
    if (old === undefined && this.#stages.size >= STAGES_MAX) {
      throw new FailedPreconditionError(`this metadata group holds ${STAGES_MAX} stages, the most it keeps`, { stagesMax: STAGES_MAX })
    }
    if (old !== undefined && (old.path !== path || old.node !== node || old.transfer !== transfer)) {
      throw new InvalidArgumentError(`stage ${id} is of ${old.path} on ${old.node}${old.transfer !== undefined ? ` from ${old.transfer}` : ''}`,
        { stage: id, path, stagePath: old.path, node })
    }
    const count = (old?.extents.length ?? 0) + extents.length
    if (count > FILE_EXTENTS_MAX) {
      throw new FailedPreconditionError(`stage ${id} would hold ${count} extents, more than a file may have (${FILE_EXTENTS_MAX})`,
        { stage: id, extents: count, extentsMax: FILE_EXTENTS_MAX })
    }
    const ids = new Set<string>()
    for (const e of extents) {
      if (ids.has(e.id)) throw new InvalidArgumentError(`extent ${e.id} is listed twice`, { stage: id, id: e.id })
      ids.add(e.id)
      if (this.#refs.has(e.id)) throw new AlreadyExistsError(`extent ${e.id} belongs to a file`, { stage: id, id: e.id })
      const staged = this.#staged.get(e.id)
      if (staged !== undefined) throw new AlreadyExistsError(`extent ${e.id} is already staged`, { stage: id, id: e.id, staged })
      const existing = this.#extents.get(e.id)
      if (existing !== undefined && (existing.size !== e.size || existing.checksum !== e.checksum)) {
        throw new AlreadyExistsError(`extent ${e.id} exists with a different size or checksum`, { stage: id, id: e.id })
      }
    }

    // Every check passed: mutate.
    const stage: StageRecord = old ?? { stage: id, path, node, extents: [], createdAtMs, ...(transfer !== undefined ? { transfer } : {}) }
    for (const e of extents) {
      const move = this.#extents.get(e.id)?.move
      this.#extents.set(e.id, move === undefined ? e : withReplicas({ ...e, move }, e.replicas))
      this.#staged.set(e.id, id)
      stage.extents.push(e.id)
    }
    this.#stages.set(id, stage)
    return { ok: true, index }
  }

  /** DropStage: the stage goes, its extents are freed (a transfer's are not: their source group owns them). */
  #dropStage (op: Fields, index: number): OkResult {
    const id = requireStageId(field(op, 'stage'), 'stage')
    const path = requirePath(field(op, 'path'), 'path')
    const stage = this.#requireStage(id, path)
    return { ok: true, index, freed: this.#discardStage(stage) }
  }

  /** Forgets a stage and its extent records; returns those whose bytes are now unreferenced (none of a transfer's). */
  #discardStage (stage: StageRecord): ExtentRecord[] {
    const records = stage.extents.map((x) => this.#requireExtentRecord(x))
    this.#removeStage(stage)
    for (const e of records) this.#extents.delete(e.id)
    return stage.transfer === undefined ? records : []
  }

  /** The stage `id`, of `path`: NotFound when there is none, InvalidArgument when it is of another path. */
  #requireStage (id: string, path: string): StageRecord {
    const stage = this.#stages.get(id)
    if (stage === undefined) throw new NotFoundError(`no stage ${id}`, { stage: id })
    if (stage.path !== path) throw new InvalidArgumentError(`stage ${id} is of ${stage.path}, not of ${path}`, { stage: id, path, stagePath: stage.path })
    return stage
  }

  /** Forgets a stage; its extent records stay (the caller hands them to a file or deletes them). */
  #removeStage (stage: StageRecord): void {
    for (const x of stage.extents) {
      invariant(this.#staged.get(x) === stage.stage, `extent ${x} of stage ${stage.stage} is not staged there`)
      this.#staged.delete(x)
    }
    this.#stages.delete(stage.stage)
  }

  #deleteFile (op: Fields, index: number): OkResult {
    const path = requirePath(field(op, 'path'), 'path')
    if (this.#dirs.has(path)) {
      throw new IsADirectoryError(`${path} is a directory`, { path })
    }
    const file = this.#files.get(path)
    if (file === undefined) {
      throw new NotFoundError(`no file ${path}`, { path })
    }
    this.#requireNotFrozen(path)
    return { ok: true, index, freed: this.#removeFile(file) }
  }

  /** RenameFile: see the rules at RENAME_FILES_MAX in @dfs/api (metadata.ts). */
  #renameFile (op: Fields, index: number): OkResult {
    const from = requirePath(field(op, 'from'), 'from')
    const to = requirePath(field(op, 'to'), 'to')
    const rawReplace = field(op, 'replace')
    if (rawReplace !== undefined && typeof rawReplace !== 'boolean') {
      throw new InvalidArgumentError('replace must be true, false or absent', { field: 'replace' })
    }
    const replace = rawReplace === true
    requireNotRoot(from, to)
    // both paths in this group (also checked by #checkScope, which the `all` scope skips)
    this.#requireShardHere('RenameFile', shardOfPath(to))
    // a tenant's files all live under its root: a rename never leaves its namespace
    const [inFrom, inTo] = [fromInternalPath(from), fromInternalPath(to)]
    if (inFrom.tenant !== inTo.tenant) throw new InvalidArgumentError('a rename cannot cross namespaces', { from, to })
    if (inFrom.tenant !== null && (inFrom.path === '/' || inTo.path === '/')) {
      throw new InvalidArgumentError('a tenant\'s root cannot be renamed, nor anything renamed to it', { from, to })
    }
    const file = this.#files.get(from)
    if (file === undefined && !this.#dirs.has(from)) throw new NotFoundError(`no file or directory ${from}`, { path: from })
    if (from === to) return { ok: true, index, ...(file !== undefined ? { file } : {}), freed: [] }
    if (file !== undefined) this.#requireNotFrozen(from)
    this.#requireNotFrozen(to)
    return file !== undefined ? this.#renameOne(file, to, replace, index) : this.#renameDir(from, to, index)
  }

  #renameOne (file: FileRecord, to: string, replace: boolean, index: number): OkResult {
    this.#checkFilePath(to)
    const replaced = this.#files.get(to)
    if (replaced !== undefined && !replace) {
      throw new AlreadyExistsError(`${to} exists (rename with replace to overwrite it)`, { path: to })
    }
    invariant(replaced === undefined || replaced.version < Number.MAX_SAFE_INTEGER, `version of ${to} overflows`)

    // Every check passed: mutate.
    const freed = replaced !== undefined ? this.#removeFile(replaced) : []
    const moved: FileRecord = Object.freeze({
      ...file, path: to, version: replaced === undefined ? file.version : Math.max(file.version, replaced.version + 1)
    })
    this.#moveFile(file, moved)
    return { ok: true, index, file: moved, freed }
  }

  #renameDir (from: string, to: string, index: number): OkResult {
    if (to.startsWith(from + '/')) throw new InvalidArgumentError(`${from} cannot move under itself`, { from, to })
    if (this.#files.has(to)) throw new NotADirectoryError(`${to} is a file, so directory ${from} cannot move there`, { path: to, from })
    if (this.#dirs.has(to)) throw new AlreadyExistsError(`directory ${to} exists`, { path: to })
    for (const a of ancestors(to)) {
      if (this.#files.has(a)) throw new NotADirectoryError(`${a} is a file, so ${to} cannot be created under it`, { path: to, file: a })
    }
    const found = this.#entriesUnder(from, RENAME_FILES_MAX)
    if (found === undefined) {
      throw new FailedPreconditionError(`${from} holds more than ${RENAME_FILES_MAX} files and explicit directories, more than one rename moves`,
        { path: from, filesMax: RENAME_FILES_MAX })
    }
    for (const f of found.files) this.#requireNotFrozen(f.path)
    // Every check passed: mutate. No target exists (none is under `to`, which is neither a file nor
    // a directory, nor under `from`), so no file is replaced. Explicit directories leave first,
    // deepest first (a descendant's path is longer), so that each empty one goes as a RemoveDir
    // would; those with entries go with their last file. Then they come back under `to`.
    const moved = (p: string): string => to + p.slice(from.length)
    const dirs = found.dirs.sort((a, b) => b.length - a.length)
    for (const d of dirs) this.#dropExplicit(d)
    for (const file of found.files) {
      this.#moveFile(file, Object.freeze({ ...file, path: moved(file.path) }))
    }
    for (const d of dirs.reverse()) this.#makeExplicit(moved(d))
    return { ok: true, index, freed: [] }
  }

  /**
   * The files under directory `dir` in path order, and the explicit directories at or under it, or
   * undefined when there are more than `max` of both together.
   */
  #entriesUnder (dir: string, max: number): { files: FileRecord[], dirs: string[] } | undefined {
    const files: FileRecord[] = []
    const dirs: string[] = []
    const walk = (d: string): boolean => {
      const children = this.#dirs.get(d)
      invariant(children !== undefined, `directory ${d} is missing`)
      if (this.#explicit.has(d)) {
        if (files.length + dirs.length === max) return false
        dirs.push(d)
      }
      for (const name of [...children.keys()].sort(compareStrings)) {
        const path = joinPath(d, name)
        if (children.get(name) === 'dir') {
          if (!walk(path)) return false
          continue
        }
        const file = this.#files.get(path)
        invariant(file !== undefined, `listed file ${path} is missing`)
        if (files.length + dirs.length === max) return false
        files.push(file)
      }
      return true
    }
    return walk(dir) ? { files, dirs } : undefined
  }

  /** MakeDir: see the rules at EXPLICIT_DIRS_MAX in @dfs/api (metadata.ts). */
  #makeDir (op: Fields, index: number): OkResult {
    const path = requirePath(field(op, 'path'), 'path')
    if (path === '/') throw new InvalidArgumentError('/ always exists: it cannot be made', { path })
    const { tenant, path: inTenant } = fromInternalPath(path)
    if (tenant !== null) {
      if (inTenant === '/') throw new InvalidArgumentError('a tenant\'s root exists with its tenant: it cannot be made', { path, tenant })
      if (!this.#tenants.has(tenant)) throw new NotFoundError(`tenant ${tenant} does not exist`, { tenant })
    }
    if (this.#files.has(path)) throw new AlreadyExistsError(`${path} is a file`, { path })
    for (const a of ancestors(path)) {
      if (this.#files.has(a)) throw new NotADirectoryError(`${a} is a file, so ${path} cannot be created under it`, { path, file: a })
    }
    if (this.#explicit.has(path)) return { ok: true, index }
    if (this.#explicit.size >= EXPLICIT_DIRS_MAX) {
      throw new FailedPreconditionError(`this metadata group holds ${EXPLICIT_DIRS_MAX} explicit directories, the most it keeps`,
        { path, dirsMax: EXPLICIT_DIRS_MAX })
    }
    this.#makeExplicit(path)
    return { ok: true, index }
  }

  /** RemoveDir: removes an empty directory (which is then explicit: an implicit one exists only while it has entries). */
  #removeDir (op: Fields, index: number): OkResult {
    const path = requirePath(field(op, 'path'), 'path')
    if (path === '/') throw new InvalidArgumentError('/ cannot be removed', { path })
    if (this.#files.has(path)) throw new NotADirectoryError(`${path} is a file`, { path })
    const children = this.#dirs.get(path)
    if (children === undefined) throw new NotFoundError(`no directory ${path}`, { path })
    if (children.size > 0) {
      throw new DirectoryNotEmptyError(`${path} has ${children.size} entr${children.size === 1 ? 'y' : 'ies'}`, { path, entries: children.size })
    }
    invariant(this.#explicit.has(path), `empty directory ${path} is not explicit`)
    this.#dropExplicit(path)
    return { ok: true, index }
  }

  /** ComposeFile: see the rules at COMPOSE_PARTS_MAX in @dfs/api (metadata.ts). */
  #composeFile (op: Fields, index: number): OkResult {
    const to = requirePath(field(op, 'to'), 'to')
    const parts = requireArray(field(op, 'parts'), 'parts', 1, COMPOSE_PARTS_MAX).map((p, i) => requirePath(p, `parts[${i}]`))
    const mtimeMs = requireInteger(field(op, 'mtimeMs'), 'mtimeMs', 0, Number.MAX_SAFE_INTEGER)
    const meta = requireFileMeta(field(op, 'meta'), 'meta')
    const rawReplace = field(op, 'replace')
    if (rawReplace !== undefined && typeof rawReplace !== 'boolean') {
      throw new InvalidArgumentError('replace must be true, false or absent', { field: 'replace' })
    }
    requireComposeWithinTopLevel(to, parts)
    // one top-level directory is one namespace; checked on its own, as a rename does
    const { tenant, path: inTenant } = fromInternalPath(to)
    if (parts.some((p) => fromInternalPath(p).tenant !== tenant)) throw new InvalidArgumentError('a compose cannot cross namespaces', { to })
    if (tenant !== null && inTenant === '/') throw new InvalidArgumentError('a tenant\'s root is a directory: nothing can be composed there', { to })
    const seen = new Set<string>()
    const files: FileRecord[] = []
    let size = 0
    let extentCount = 0
    for (const part of parts) {
      if (part === to) throw new InvalidArgumentError(`the target ${to} cannot be one of its parts`, { to })
      if (seen.has(part)) throw new InvalidArgumentError(`part ${part} is listed twice`, { to, part })
      seen.add(part)
      const file = this.#files.get(part)
      if (file === undefined) {
        if (this.#dirs.has(part)) throw new IsADirectoryError(`part ${part} is a directory`, { path: part })
        throw new NotFoundError(`no file ${part}`, { path: part })
      }
      this.#requireNotFrozen(part)
      files.push(file)
      size += file.size
      extentCount += file.extents.length
    }
    if (extentCount > FILE_EXTENTS_MAX) {
      throw new InvalidArgumentError(`the parts hold ${extentCount} extents, more than a file may have (${FILE_EXTENTS_MAX})`,
        { to, extents: extentCount, extentsMax: FILE_EXTENTS_MAX })
    }
    invariant(Number.isSafeInteger(size), `size of ${to} overflows`)
    this.#checkFilePath(to)
    this.#requireNotFrozen(to)
    const replaced = this.#files.get(to)
    if (replaced !== undefined && rawReplace !== true) {
      throw new AlreadyExistsError(`${to} exists (compose with replace to overwrite it)`, { path: to })
    }
    // parts under a tenant's root exist only while their tenant does (RemoveTenant waits for them)
    invariant(tenant === null || this.#tenants.has(tenant), `files of missing tenant ${tenant ?? ''}`)
    invariant(replaced === undefined || replaced.version < Number.MAX_SAFE_INTEGER, `version of ${to} overflows`)

    // Every check passed: mutate. The parts' extent records become the new file's, unchanged.
    const records = files.flatMap((f) => f.extents.map((id) => {
      const record = this.#extents.get(id)
      invariant(record !== undefined, `file ${f.path} lists missing extent ${id}`)
      return record
    }))
    const file: FileRecord = Object.freeze({
      path: to,
      size,
      mtimeMs,
      version: replaced === undefined ? 1 : replaced.version + 1,
      extents: Object.freeze(records.map((r) => r.id)) as string[],
      ...(meta !== undefined ? { meta } : {})
    })
    // the new file references every extent of the parts before they go, so the parts free nothing
    const freed = this.#replaceFile(file, records)
    for (const f of files) invariant(this.#removeFile(f).length === 0, `part ${f.path} freed extents ${to} lists`)
    return { ok: true, index, file, freed }
  }

  #putS3Key (op: Fields, index: number): OkResult {
    const key = requireS3Key(field(op, 'key'), 'key')
    // details never carry the secret
    if (this.#s3Keys.has(key.accessKeyId)) throw new AlreadyExistsError(`access key ${key.accessKeyId} exists`, { accessKeyId: key.accessKeyId })
    if (this.#s3Keys.size >= S3_KEYS_MAX) {
      throw new FailedPreconditionError(`the cluster has ${S3_KEYS_MAX} access keys, the most it keeps: revoke some first`, { keysMax: S3_KEYS_MAX })
    }
    if (!this.#users.has(key.user)) {
      throw new FailedPreconditionError(`${key.user} has no role: an access key acts as a user`, { user: key.user })
    }
    this.#s3Keys.set(key.accessKeyId, key)
    return { ok: true, index }
  }

  #revokeS3Key (op: Fields, index: number): OkResult {
    const id = requireAccessKeyId(field(op, 'accessKeyId'), 'accessKeyId')
    if (!this.#s3Keys.delete(id)) throw new NotFoundError(`no access key ${id}`, { accessKeyId: id })
    return { ok: true, index }
  }

  /** SetFileTime: the file's mtime, nothing else (its version and extents stay: no content changed). */
  #setFileTime (op: Fields, index: number): OkResult {
    const path = requirePath(field(op, 'path'), 'path')
    const mtimeMs = requireInteger(field(op, 'mtimeMs'), 'mtimeMs', 0, Number.MAX_SAFE_INTEGER)
    const file = this.#files.get(path)
    if (file === undefined) {
      if (this.#dirs.has(path)) throw new IsADirectoryError(`${path} is a directory: only files keep a time`, { path })
      throw new NotFoundError(`no file ${path}`, { path })
    }
    this.#requireNotFrozen(path)
    const touched: FileRecord = Object.freeze({ ...file, mtimeMs })
    this.#files.set(path, touched)
    return { ok: true, index, file: touched }
  }

  /** CopyFile: see the rules at CopyFileOp in @dfs/api (metadata.ts). */
  #copyFile (op: Fields, index: number): OkResult {
    const from = requirePath(field(op, 'from'), 'from')
    const to = requirePath(field(op, 'to'), 'to')
    const mtimeMs = requireInteger(field(op, 'mtimeMs'), 'mtimeMs', 0, Number.MAX_SAFE_INTEGER)
    const rawMeta = field(op, 'meta')
    const meta = requireFileMeta(rawMeta, 'meta')
    const replace = requireOptionalBoolean(field(op, 'replace'), 'replace')
    requireNotRoot(from, to)
    this.#requireShardHere('CopyFile', shardOfPath(to))
    if (from === to) throw new InvalidArgumentError(`${from} cannot be copied onto itself`, { from, to })
    const tenant = fromInternalPath(to).tenant
    if (fromInternalPath(from).tenant !== tenant) throw new InvalidArgumentError('a copy cannot cross namespaces', { from, to })
    const file = this.#files.get(from)
    if (file === undefined) {
      if (this.#dirs.has(from)) throw new IsADirectoryError(`${from} is a directory`, { path: from })
      throw new NotFoundError(`no file ${from}`, { path: from })
    }
    this.#requireNotFrozen(from)
    this.#requireNotFrozen(to)
    this.#checkFilePath(to)
    const replaced = this.#files.get(to)
    if (replaced !== undefined && !replace) throw new AlreadyExistsError(`${to} exists (copy with replace to overwrite it)`, { path: to })
    if (tenant !== null) this.#checkTenantPut(tenant, to, file.size)
    invariant(replaced === undefined || replaced.version < Number.MAX_SAFE_INTEGER, `version of ${to} overflows`)

    // Every check passed: mutate. The copy lists the same extents: one more reference each.
    const records = file.extents.map((id) => this.#requireExtentRecord(id))
    // the bytes are the same, so the etag is too unless the new metadata names one
    const etag = meta?.etag ?? file.meta?.etag
    const keptMeta = rawMeta === undefined ? file.meta : requireFileMeta({ ...meta, ...(etag !== undefined ? { etag } : {}) })
    const copy: FileRecord = Object.freeze({
      path: to,
      size: file.size,
      mtimeMs,
      version: replaced === undefined ? 1 : replaced.version + 1,
      extents: file.extents,
      ...(keptMeta !== undefined ? { meta: keptMeta } : {})
    })
    const freed = this.#replaceFile(copy, records)
    return { ok: true, index, file: copy, freed }
  }

  /** BeginTransfer: see TRANSFERS_MAX in @dfs/api (metadata.ts). */
  #beginTransfer (op: Fields, index: number): OkResult {
    const tx = requireStageId(field(op, 'tx'), 'tx')
    const from = requirePath(field(op, 'from'), 'from')
    const to = requirePath(field(op, 'to'), 'to')
    const node = requirePeerId(field(op, 'node'), 'node')
    const createdAtMs = requireInteger(field(op, 'createdAtMs'), 'createdAtMs', 0, Number.MAX_SAFE_INTEGER)
    requireNotRoot(from, to)
    if (this.#holdsShard(shardOfPath(to))) {
      throw new InvalidArgumentError(`${from} and ${to} are in one group: rename instead of transferring`, { from, to })
    }
    requireSameNamespace(from, to)
    if (this.#outgoing.has(tx)) throw new AlreadyExistsError(`transfer ${tx} exists`, { tx })
    if (this.#outgoing.size >= TRANSFERS_MAX) {
      throw new FailedPreconditionError(`this metadata group has ${TRANSFERS_MAX} transfers in progress, the most it keeps`, { transfersMax: TRANSFERS_MAX })
    }
    const file = this.#files.get(from)
    if (file === undefined) {
      if (this.#dirs.has(from)) throw new IsADirectoryError(`${from} is a directory: directories move between groups file by file`, { path: from })
      throw new NotFoundError(`no file ${from}`, { path: from })
    }
    this.#requireNotFrozen(from)
    for (const id of file.extents) {
      if (this.#refs.get(id) !== 1) {
        throw new FailedPreconditionError(`${from} shares extent ${id} with another file (or lists it twice): it cannot move to another group without copying`,
          { path: from, id })
      }
    }

    // Every check passed: mutate. The file stays readable, frozen until the transfer ends.
    this.#outgoing.set(tx, Object.freeze({ tx, from, to, node, createdAtMs }))
    this.#freeze(tx, file)
    return { ok: true, index, file }
  }

  /** FinishTransfer (`finish`: the file goes, nothing is freed) or AbortTransfer (it thaws). */
  #endTransfer (op: Fields, index: number, finish: boolean): OkResult {
    const tx = requireStageId(field(op, 'tx'), 'tx')
    const from = requirePath(field(op, 'from'), 'from')
    const transfer = this.#outgoing.get(tx)
    if (transfer === undefined) throw new NotFoundError(`no transfer ${tx}`, { tx })
    if (transfer.from !== from) throw new InvalidArgumentError(`transfer ${tx} is of ${transfer.from}, not of ${from}`, { tx, from })
    const file = this.#files.get(from)
    invariant(file !== undefined && this.#frozen.get(from) === tx, `transfer ${tx} lost its file ${from}`)

    // Every check passed: mutate.
    this.#thaw(file)
    this.#outgoing.delete(tx)
    if (finish) {
      // the target owns the extents now: their records go from here, their bytes stay
      const unreferenced = this.#removeFile(file)
      invariant(unreferenced.length === file.extents.length, `transfer ${tx}: ${from} shared extents`)
    }
    return { ok: true, index, freed: [] }
  }

  /** AcceptTransfer: see TRANSFERS_MAX in @dfs/api (metadata.ts). */
  #acceptTransfer (op: Fields, index: number): OkResult {
    const tx = requireStageId(field(op, 'tx'), 'tx')
    const from = requirePath(field(op, 'from'), 'from')
    const to = requirePath(field(op, 'to'), 'to')
    const size = requireInteger(field(op, 'size'), 'size', 0, Number.MAX_SAFE_INTEGER)
    const mtimeMs = requireInteger(field(op, 'mtimeMs'), 'mtimeMs', 0, Number.MAX_SAFE_INTEGER)
    const version = requireInteger(field(op, 'version'), 'version', 1, Number.MAX_SAFE_INTEGER)
    const meta = requireFileMeta(field(op, 'meta'), 'meta')
    const replace = requireOptionalBoolean(field(op, 'replace'), 'replace')
    const createdAtMs = requireInteger(field(op, 'createdAtMs'), 'createdAtMs', 0, Number.MAX_SAFE_INTEGER)
    requireNotRoot(from, to)
    requireSameNamespace(from, to)
    const outcome = this.#incoming.get(tx)
    if (outcome !== undefined) {
      if (!outcome.accepted) throw new FailedPreconditionError(`transfer ${tx} was refused here`, { tx })
      return { ok: true, index, accepted: true, freed: [] }
    }
    if (this.#incoming.size >= TRANSFERS_MAX) {
      throw new FailedPreconditionError(`this metadata group keeps ${TRANSFERS_MAX} transfer outcomes, the most it keeps`, { transfersMax: TRANSFERS_MAX })
    }
    const stage = this.#stages.get(tx)
    if (stage === undefined && size > 0) throw new NotFoundError(`no stage ${tx}`, { stage: tx })
    if (stage !== undefined && (stage.path !== to || stage.transfer !== from)) {
      throw new InvalidArgumentError(`stage ${tx} is not the transfer of ${from} to ${to}`, { stage: tx, path: to })
    }
    const records = (stage?.extents ?? []).map((id) => this.#requireExtentRecord(id))
    const total = records.reduce((n, e) => n + e.size, 0)
    if (total !== size) throw new InvalidArgumentError(`size ${size} is not the sum of the staged extent sizes (${total})`, { path: to, size, extentBytes: total })
    this.#checkFilePath(to)
    this.#requireNotFrozen(to)
    const replaced = this.#files.get(to)
    if (replaced !== undefined && !replace) throw new AlreadyExistsError(`${to} exists (rename with replace to overwrite it)`, { path: to })
    const tenant = fromInternalPath(to).tenant
    if (tenant !== null) this.#checkTenantPut(tenant, to, size)
    invariant(replaced === undefined || replaced.version < Number.MAX_SAFE_INTEGER, `version of ${to} overflows`)

    // Every check passed: mutate. As a rename: the file keeps its version unless it replaces one.
    if (stage !== undefined) this.#removeStage(stage)
    const file: FileRecord = Object.freeze({
      path: to,
      size,
      mtimeMs,
      version: replaced === undefined ? version : Math.max(version, replaced.version + 1),
      extents: Object.freeze(records.map((e) => e.id)) as string[],
      ...(meta !== undefined ? { meta } : {})
    })
    const freed = this.#replaceFile(file, records)
    this.#incoming.set(tx, Object.freeze({ tx, from, to, accepted: true, createdAtMs }))
    return { ok: true, index, file, freed, accepted: true }
  }

  /** RefuseTransfer: fences a transfer not accepted yet (its stage goes, freeing nothing); `accepted` says what it found. */
  #refuseTransfer (op: Fields, index: number): OkResult {
    const tx = requireStageId(field(op, 'tx'), 'tx')
    const from = requirePath(field(op, 'from'), 'from')
    const to = requirePath(field(op, 'to'), 'to')
    const createdAtMs = requireInteger(field(op, 'createdAtMs'), 'createdAtMs', 0, Number.MAX_SAFE_INTEGER)
    requireNotRoot(from, to)
    const outcome = this.#incoming.get(tx)
    if (outcome !== undefined) return { ok: true, index, accepted: outcome.accepted, freed: [] }
    if (this.#incoming.size >= TRANSFERS_MAX) {
      throw new FailedPreconditionError(`this metadata group keeps ${TRANSFERS_MAX} transfer outcomes, the most it keeps`, { transfersMax: TRANSFERS_MAX })
    }
    const stage = this.#stages.get(tx)
    if (stage !== undefined && stage.transfer === undefined) {
      throw new InvalidArgumentError(`stage ${tx} is a put's, not a transfer's`, { stage: tx })
    }

    // Every check passed: mutate.
    if (stage !== undefined) this.#discardStage(stage)
    this.#incoming.set(tx, Object.freeze({ tx, from, to, accepted: false, createdAtMs }))
    return { ok: true, index, accepted: false, freed: [] }
  }

  #forgetTransfer (op: Fields, index: number): OkResult {
    const tx = requireStageId(field(op, 'tx'), 'tx')
    const to = requirePath(field(op, 'to'), 'to')
    const outcome = this.#incoming.get(tx)
    if (outcome === undefined) throw new NotFoundError(`no outcome of transfer ${tx}`, { tx })
    if (outcome.to !== to) throw new InvalidArgumentError(`transfer ${tx} was to ${outcome.to}, not to ${to}`, { tx, to })
    this.#incoming.delete(tx)
    return { ok: true, index }
  }

  // ---------------------------------------------------------------------------------------------
  // checks (throw typed errors, change nothing) and mutations (never throw typed errors)

  /** FailedPrecondition while the file at `path` is being transferred to another group. */
  #requireNotFrozen (path: string): void {
    const tx = this.#frozen.get(path)
    if (tx !== undefined) throw new FailedPreconditionError(`${path} is being moved to another group (transfer ${tx}): try again`, { path, tx })
  }

  /** FailedPrecondition while extent `id` belongs to a file being transferred to another group. */
  #requireExtentNotFrozen (id: string): void {
    const tx = this.#frozenExtents.get(id)
    if (tx !== undefined) throw new FailedPreconditionError(`extent ${id} is being moved to another group (transfer ${tx}): try again`, { id, tx })
  }

  #freeze (tx: string, file: FileRecord): void {
    this.#frozen.set(file.path, tx)
    for (const id of file.extents) this.#frozenExtents.set(id, tx)
  }

  #thaw (file: FileRecord): void {
    this.#frozen.delete(file.path)
    for (const id of file.extents) this.#frozenExtents.delete(id)
  }

  #requireExtentRecord (id: string): ExtentRecord {
    const extent = this.#extents.get(id)
    if (extent === undefined) {
      throw new NotFoundError(`no extent ${id}`, { id })
    }
    return extent
  }

  /**
   * A put of `size` bytes at `path`, under `tenant`'s root, may happen: the tenant exists and the put
   * takes its usage past no quota. Usage over a lowered quota is left alone: only a put that adds
   * bytes (or a file) past a quota is refused, so replacing a file by a smaller one always works.
   */
  #checkTenantPut (tenant: string, path: string, size: number): void {
    if (path === `/${TENANT_MARKER}${tenant}`) {
      throw new InvalidArgumentError('a tenant\'s root is a directory: a file cannot be put there', { path, tenant })
    }
    const record = this.#tenants.get(tenant)
    if (record === undefined) throw new NotFoundError(`tenant ${tenant} does not exist`, { tenant })
    const used = this.#usage.get(tenant) ?? { bytes: 0, files: 0 }
    const old = this.#files.get(path)
    const bytes = used.bytes - (old?.size ?? 0) + size
    const files = used.files + (old === undefined ? 1 : 0)
    if (record.quotaBytes !== null && bytes > record.quotaBytes && bytes > used.bytes) {
      throw new QuotaExceededError(`tenant ${tenant} would hold ${bytes} bytes, past its quota of ${record.quotaBytes}`,
        { tenant, quotaBytes: record.quotaBytes, usedBytes: used.bytes, wanted: bytes - used.bytes })
    }
    if (record.quotaFiles !== null && files > record.quotaFiles && files > used.files) {
      throw new QuotaExceededError(`tenant ${tenant} would hold ${files} files, past its quota of ${record.quotaFiles}`,
        { tenant, quotaFiles: record.quotaFiles, usedFiles: used.files, wanted: files - used.files })
    }
  }

  /** Adds a file's change to the usage of the tenant whose root `path` lies under (if any). */
  #addUsage (path: string, bytes: number, files: number): void {
    const tenant = fromInternalPath(path).tenant
    if (tenant === null || (bytes === 0 && files === 0)) return
    const used = this.#usage.get(tenant) ?? { bytes: 0, files: 0 }
    const next = { bytes: used.bytes + bytes, files: used.files + files }
    invariant(next.bytes >= 0 && next.files >= 0 && Number.isSafeInteger(next.bytes), `usage of tenant ${tenant} out of range`)
    if (next.files === 0) this.#usage.delete(tenant)
    else this.#usage.set(tenant, next)
  }

  /** A file may be put at `path`: it is not a directory and no ancestor is a file. */
  #checkFilePath (path: string): void {
    if (this.#dirs.has(path)) {
      throw new IsADirectoryError(`${path} is a directory`, { path })
    }
    for (const a of ancestors(path)) {
      if (this.#files.has(a)) {
        throw new NotADirectoryError(`${a} is a file, so ${path} cannot be created under it`, { path, file: a })
      }
    }
  }

  /**
   * Each extent a put brings is new, or one the current version of `path` lists (which it may keep),
   * and an existing record has the same bytes. (Extents are shared by CopyFile and ComposeFile, never
   * by a put naming another file's extent.)
   */
  #checkExtentsFree (path: string, extents: readonly ExtentRecord[]): void {
    const mine = new Set(this.#files.get(path)?.extents ?? [])
    for (const e of extents) {
      if (this.#refs.has(e.id) && !mine.has(e.id)) {
        throw new AlreadyExistsError(`extent ${e.id} belongs to another file`, { path, id: e.id })
      }
      const stage = this.#staged.get(e.id)
      if (stage !== undefined) throw new AlreadyExistsError(`extent ${e.id} belongs to stage ${stage}`, { path, id: e.id, stage })
      const existing = this.#extents.get(e.id)
      if (existing !== undefined && (existing.size !== e.size || existing.checksum !== e.checksum)) {
        throw new AlreadyExistsError(`extent ${e.id} exists with a different size or checksum`, {
          path, id: e.id, size: existing.size, checksum: existing.checksum
        })
      }
    }
  }

  /**
   * Makes `file` the current version at its path (`extents`: the records of its extents in order),
   * replacing the version there if any; returns the records of the extents nothing references any
   * more (their bytes may be freed). The new version's references count before the old version's
   * go, so an extent both list keeps its record and bytes.
   */
  #replaceFile (file: FileRecord, extents: readonly ExtentRecord[]): ExtentRecord[] {
    for (const e of extents) {
      // a new version that keeps an extent keeps its recorded move while the move still fits
      const move = this.#extents.get(e.id)?.move
      this.#extents.set(e.id, move === undefined ? e : withReplicas({ ...e, move }, e.replicas))
      this.#refs.set(e.id, (this.#refs.get(e.id) ?? 0) + 1)
    }
    const old = this.#files.get(file.path)
    const freed = old === undefined ? [] : this.#dropRefs(old)
    this.#addUsage(file.path, file.size - (old?.size ?? 0), old === undefined ? 1 : 0)
    this.#files.set(file.path, file)
    if (old === undefined) this.#link(file.path)
    return freed
  }

  /** Removes a file; returns the records of the extents nothing references any more (their bytes may be freed). */
  #removeFile (file: FileRecord): ExtentRecord[] {
    const path = file.path
    const freed = this.#dropRefs(file)
    this.#files.delete(path)
    this.#unlink(path)
    this.#addUsage(path, -file.size, -1)
    return freed
  }

  /** Drops a file version's references; the extents left without any lose their records, which are returned. */
  #dropRefs (file: FileRecord): ExtentRecord[] {
    const freed: ExtentRecord[] = []
    for (const id of file.extents) {
      const refs = this.#refs.get(id)
      const record = this.#extents.get(id)
      invariant(refs !== undefined && refs > 0 && record !== undefined, `file ${file.path} lists unreferenced or missing extent ${id}`)
      if (refs > 1) {
        this.#refs.set(id, refs - 1)
        continue
      }
      this.#refs.delete(id)
      this.#extents.delete(id)
      freed.push(record)
    }
    return freed
  }

  /**
   * Moves a file's record to `moved.path` (a path where no file is and a file may be), with its
   * extents. Usage moves with it: to the same tenant, since both paths share their top level.
   */
  #moveFile (file: FileRecord, moved: FileRecord): void {
    invariant(!this.#files.has(moved.path), `${moved.path} is taken`)
    this.#files.delete(file.path)
    this.#unlink(file.path)
    this.#addUsage(file.path, -file.size, -1)
    this.#files.set(moved.path, moved)
    this.#link(moved.path)
    this.#addUsage(moved.path, moved.size, 1)
  }

  /**
   * Marks `path` (where no file is, nor above it) an explicit directory, creating it and the implicit
   * directories above it when it does not exist.
   */
  #makeExplicit (path: string): void {
    if (!this.#dirs.has(path)) {
      this.#dirs.set(path, new Map())
      this.#link(path, 'dir')
    }
    this.#explicit.add(path)
  }

  /** Makes an explicit directory implicit: it goes, with the implicit ones above it, once it has no entry. */
  #dropExplicit (path: string): void {
    invariant(this.#explicit.delete(path), `${path} is not an explicit directory`)
    const children = this.#dirs.get(path)
    invariant(children !== undefined, `explicit directory ${path} is missing`)
    if (children.size > 0) return
    this.#dirs.delete(path)
    this.#sortedNames.delete(path)
    this.#unlink(path)
  }

  /** Adds a new file (or a new directory, already in #dirs) to its parent directory, creating the implicit directories above it. */
  #link (path: string, entry: EntryType = 'file'): void {
    let child = path
    let type: EntryType = entry
    for (;;) {
      const parent = parentPath(child)
      invariant(!this.#files.has(parent), `${parent} is both a file and a directory`)
      let children = this.#dirs.get(parent)
      const created = children === undefined
      if (children === undefined) {
        children = new Map()
        this.#dirs.set(parent, children)
      }
      invariant(!children.has(baseName(child)), `${child} is linked twice`)
      children.set(baseName(child), type)
      this.#sortedNames.delete(parent)
      if (!created) {
        return
      }
      child = parent
      type = 'dir'
    }
  }

  /** Removes a file (or a gone directory) from its parent, and every implicit directory that becomes empty (never `/`). */
  #unlink (path: string): void {
    let child = path
    for (;;) {
      const parent = parentPath(child)
      const children = this.#dirs.get(parent)
      invariant(children !== undefined, `parent ${parent} of ${child} is missing`)
      invariant(children.delete(baseName(child)), `${child} is not linked in ${parent}`)
      this.#sortedNames.delete(parent)
      if (parent === '/' || children.size > 0 || this.#explicit.has(parent)) {
        return
      }
      this.#dirs.delete(parent)
      child = parent
    }
  }

  // ---------------------------------------------------------------------------------------------
  // MetadataView

  cluster (): ClusterRecord | undefined {
    return this.#cluster
  }

  /** Members sorted by id. */
  members (): MemberRecord[] {
    return [...this.#members.values()].sort((a, b) => compareStrings(a.id, b.id))
  }

  role (peer: PeerIdString): Role | undefined {
    return this.#users.get(peer)?.role
  }

  user (peer: PeerIdString): UserRecord | undefined {
    return this.#users.get(peer)
  }

  /** Every grant, sorted by peer id. */
  users (): UserRecord[] {
    return [...this.#users.values()].sort((a, b) => compareStrings(a.id, b.id))
  }

  /** A tenant of this state with its usage (undefined for an unknown or malformed name). */
  tenant (name: string): TenantInfo | undefined {
    const record = typeof name === 'string' ? this.#tenants.get(name) : undefined
    if (record === undefined) return undefined
    const used = this.#usage.get(name)
    return { ...record, usedBytes: used?.bytes ?? 0, usedFiles: used?.files ?? 0 }
  }

  /** Every tenant of this state with its usage, sorted by name. */
  tenants (): TenantInfo[] {
    return [...this.#tenants.keys()].sort(compareStrings).map((name) => this.tenant(name) as TenantInfo)
  }

  joinToken (id: string): JoinTokenRecord | undefined {
    return this.#tokens.get(id)
  }

  s3Key (accessKeyId: string): S3KeyRecord | undefined {
    return typeof accessKeyId === 'string' ? this.#s3Keys.get(accessKeyId) : undefined
  }

  /** Every S3 access key, sorted by id. */
  s3Keys (): S3KeyRecord[] {
    return [...this.#s3Keys.values()].sort((a, b) => compareStrings(a.accessKeyId, b.accessKeyId))
  }

  /** Every join token held (expired ones are pruned only when a newer token is created), sorted by id. */
  joinTokens (): JoinTokenRecord[] {
    return [...this.#tokens.values()].sort((a, b) => compareStrings(a.id, b.id))
  }

  /** The retained audit log (a copy of the list; the entries are frozen). */
  audit (): { checkpoint: AuditCheckpoint, entries: readonly AuditEntry[] } {
    return { checkpoint: this.#auditCheckpoint, entries: this.#auditEntries.slice(this.#auditHead) }
  }

  clusterKey (): ClusterKey | undefined {
    return this.#clusterKey
  }

  config (): ClusterConfig {
    return { ...CLUSTER_CONFIG_DEFAULTS, ...Object.fromEntries(this.#config) }
  }

  /** Every peer that has a role, sorted by peer id. */
  roles (): Array<{ peer: PeerIdString, role: Role }> {
    return this.users().map((u) => ({ peer: u.id, role: u.role }))
  }

  /** The current version of the file at `path` (normalized; InvalidArgument if malformed). */
  getFile (path: string): FileRecord | undefined {
    return this.#files.get(normalizePath(path))
  }

  getExtent (id: string): ExtentRecord | undefined {
    return typeof id === 'string' ? this.#extents.get(id) : undefined
  }

  /**
   * Entries directly under `dir`, sorted by name (UTF-16 code unit order). Costs O(k) for k entries
   * (plus O(k log k) the first time after the directory changed).
   */
  isDirectory (path: string): boolean {
    const p = normalizePath(path)
    // #dirs holds exactly `/`, the directories with entries and the explicit ones
    return this.#dirs.has(p)
  }

  list (dir: string, page: ListDirPage = {}): DirEntry[] {
    const path = normalizePath(dir)
    if (this.#files.has(path)) {
      throw new NotADirectoryError(`${path} is a file`, { path })
    }
    const children = this.#dirs.get(path)
    if (children === undefined) {
      throw new NotFoundError(`no directory ${path}`, { path })
    }
    let names = this.#sortedNames.get(path)
    if (names === undefined) {
      names = [...children.keys()].sort(compareStrings)
      this.#sortedNames.set(path, names)
    }
    let from = 0
    if (page.after !== undefined) {
      // the first name after `after`: a binary search over the sorted names
      let lo = 0
      let hi = names.length
      while (lo < hi) {
        const mid = (lo + hi) >>> 1
        if (compareStrings(names[mid], page.after) <= 0) lo = mid + 1
        else hi = mid
      }
      from = lo
    }
    const to = page.limit === undefined ? names.length : Math.min(names.length, from + Math.max(0, page.limit))
    return names.slice(from, to).map((name) => {
      const childPath = joinPath(path, name)
      const type = children.get(name)
      if (type === 'file') {
        const file = this.#files.get(childPath)
        invariant(file !== undefined, `listed file ${childPath} is missing`)
        return { path: childPath, name, type, size: file.size }
      }
      const sub = this.#dirs.get(childPath)
      invariant(sub !== undefined, `listed directory ${childPath} is missing`)
      return { path: childPath, name, type: 'dir', size: sub.size }
    })
  }

  /** Every extent id the metadata holds (of files and standalone), as a copy. */
  extentIds (): string[] {
    return [...this.#extents.keys()]
  }

  /** Every stage, sorted by id (copies). */
  stages (): StageRecord[] {
    return [...this.#stages.values()].sort((a, b) => compareStrings(a.stage, b.stage)).map((t) => ({ ...t, extents: [...t.extents] }))
  }

  /** Transfers out of this group (sorted by tx) and outcomes of transfers into it (copies). */
  transfers (): { out: TransferRecord[], in: TransferOutcome[] } {
    const byTx = (a: { tx: string }, b: { tx: string }): number => compareStrings(a.tx, b.tx)
    return { out: [...this.#outgoing.values()].sort(byTx), in: [...this.#incoming.values()].sort(byTx) }
  }

  /**
   * Whether this group's record of extent `id` is one side of a transfer rather than the extent's
   * live record: the source's, frozen, or the target's, staged and not yet accepted. While both
   * groups hold a record, the other one is live (MetadataView.getExtent of a sharded service).
   */
  extentInTransfer (id: string): boolean {
    if (this.#frozenExtents.has(id)) return true
    const stage = this.#staged.get(id)
    return stage !== undefined && this.#stages.get(stage)?.transfer !== undefined
  }

  /** How many files list extent `id` (0 for a staged or standalone extent or an unknown id). */
  extentRefs (id: string): number {
    return this.#refs.get(id) ?? 0
  }

  /** A stage by id (a copy), or undefined. */
  stage (id: string): StageRecord | undefined {
    const t = typeof id === 'string' ? this.#stages.get(id) : undefined
    return t === undefined ? undefined : { ...t, extents: [...t.extents] }
  }

  appliedIndex (): number {
    return this.#applied
  }

  /** Counts, for status and tests. */
  counts (): { files: number, extents: number, dirs: number, members: number, roles: number } {
    return {
      files: this.#files.size,
      extents: this.#extents.size,
      dirs: this.#dirs.size,
      members: this.#members.size,
      roles: this.#users.size
    }
  }

  // ---------------------------------------------------------------------------------------------
  // snapshots

  /**
   * The whole state as deterministic CBOR: every collection is a list sorted by its key, and map keys
   * are sorted by the encoder, so equal states give equal bytes.
   */
  snapshot (): Uint8Array {
    const byKey = <T>(key: (t: T) => string) => (a: T, b: T) => compareStrings(key(a), key(b))
    const c = this.#cluster
    return encodeCbor({
      v: SNAPSHOT_VERSION,
      scope: this.scope,
      appliedIndex: this.#applied,
      cluster: c === undefined ? null : { ...c },
      clusterKey: this.#clusterKey ?? null,
      members: [...this.#members.values()].sort(byKey((m) => m.id)),
      roles: this.users().map((u) => [u.id, u.role, u.tenant]),
      tenants: [...this.#tenants.values()].sort(byKey((t) => t.name)),
      // entries with their stored hashes: a restore takes them as they are, so tampering stays visible
      audit: { checkpoint: this.#auditCheckpoint, entries: this.#auditEntries.slice(this.#auditHead) },
      tokens: [...this.#tokens.values()].sort(byKey((t) => t.id)),
      s3Keys: this.s3Keys(),
      config: [...this.#config].sort((a, b) => compareStrings(a[0], b[0])),
      extents: [...this.#extents.values()].sort(byKey((e) => e.id)),
      files: [...this.#files.values()].sort(byKey((f) => f.path)),
      dirs: [...this.#explicit].sort(compareStrings),
      stages: this.stages(),
      transfers: this.transfers()
    })
  }

  /**
   * Rebuilds a state machine from `snapshot()` bytes. The bytes are untrusted (they may come from
   * another node): everything is validated, and InvalidArgument / MalformedFrame name what is wrong.
   * The snapshot must have been taken with the same `scope` (snapshots before version 3 had none and
   * held everything).
   */
  static restore (bytes: Uint8Array, scope: StateMachineScope = ALL): MetadataStateMachine {
    try {
      return MetadataStateMachine.#restore(decodeCbor(bytes), scope)
    } catch (err) {
      if (err instanceof DfsError && err.name === 'InvalidArgument') {
        throw new InvalidArgumentError(`invalid metadata snapshot: ${err.message}`, err.details)
      }
      throw err
    }
  }

  static #restore (input: unknown, scope: StateMachineScope): MetadataStateMachine {
    const sm = new MetadataStateMachine(scope)
    const snap = requireRecord(input, 'snapshot')
    const version = field(snap, 'v')
    if (version !== SNAPSHOT_VERSION && version !== 6 && version !== 5 && version !== 4 && version !== 3 && version !== 2 && version !== 1) {
      throw new InvalidArgumentError(`unsupported snapshot version (expected 1 to ${SNAPSHOT_VERSION})`, { field: 'v' })
    }
    const taken = version >= 3 ? requireScope(field(snap, 'scope')) : ALL
    if (!sameScope(taken, scope)) {
      throw new InvalidArgumentError(`the snapshot is of ${describeScope(taken)}, not of ${describeScope(scope)}`, { field: 'scope' })
    }
    sm.#applied = requireInteger(field(snap, 'appliedIndex'), 'appliedIndex', 0, Number.MAX_SAFE_INTEGER)

    const cluster = field(snap, 'cluster')
    if (cluster !== null) {
      const c = requireRecord(cluster, 'cluster')
      const rawGroups = field(c, 'metadataGroups')
      const groups = rawGroups === undefined ? undefined : requireInteger(rawGroups, 'cluster.metadataGroups', 1, DATA_GROUPS_MAX)
      const rawKey = version >= 4 ? field(snap, 'clusterKey') : null
      const key = rawKey === null ? undefined : requireClusterKey(rawKey, 'clusterKey')
      const publicKey = version >= 4 ? field(c, 'publicKey') : undefined
      if (publicKey !== key?.publicKey) {
        throw new InvalidArgumentError('cluster.publicKey is not the public half of clusterKey', { field: 'cluster.publicKey' })
      }
      sm.#cluster = Object.freeze({
        clusterId: requireString(field(c, 'clusterId'), 'cluster.clusterId', 1, CLUSTER_ID_LENGTH_MAX),
        createdAtMs: requireInteger(field(c, 'createdAtMs'), 'cluster.createdAtMs', 0, Number.MAX_SAFE_INTEGER),
        ...(groups !== undefined ? { metadataGroups: groups } : {}),
        ...(key !== undefined ? { publicKey: key.publicKey } : {})
      })
      sm.#clusterKey = key
    } else if (version >= 4 && field(snap, 'clusterKey') !== null) {
      throw new InvalidArgumentError('a cluster key without a cluster', { field: 'clusterKey' })
    }

    const members = requireArray(field(snap, 'members'), 'members', 0, Number.MAX_SAFE_INTEGER)
    members.forEach((m, i) => {
      const draining = field(requireRecord(m, `members[${i}]`), 'draining')
      if (draining !== undefined && draining !== true) throw new InvalidArgumentError(`members[${i}].draining must be true or absent`, { field: `members[${i}].draining` })
      const plain = requireMember(m, `members[${i}]`)
      const member = draining === true ? Object.freeze({ ...plain, draining }) : plain
      if (sm.#members.has(member.id)) {
        throw new InvalidArgumentError(`member ${member.id} appears twice`, { id: member.id })
      }
      sm.#members.set(member.id, member)
    })

    // before version 4 every grant was cluster-wide: [peer, role]; since, [peer, role, tenant]
    const roles = requireArray(field(snap, 'roles'), 'roles', 0, USERS_MAX)
    roles.forEach((r, i) => {
      const grant = requireArray(r, `roles[${i}]`, version >= 4 ? 3 : 2, version >= 4 ? 3 : 2)
      const peer = requirePeerId(grant[0], `roles[${i}][0]`)
      const role = requireRole(grant[1], `roles[${i}][1]`)
      const tenant = grant[2] === undefined || grant[2] === null ? null : requireTenantField(grant[2], `roles[${i}][2]`)
      if (sm.#users.has(peer)) {
        throw new InvalidArgumentError(`role of ${peer} appears twice`, { peer })
      }
      sm.#users.set(peer, Object.freeze({ id: peer, role, tenant }))
    })

    const tenants = version >= 4 ? requireArray(field(snap, 'tenants'), 'tenants', 0, TENANTS_MAX) : []
    tenants.forEach((t, i) => {
      const tenant = requireTenant(t, `tenants[${i}]`)
      if (sm.#tenants.has(tenant.name)) throw new InvalidArgumentError(`tenant ${tenant.name} appears twice`, { tenant: tenant.name })
      sm.#tenants.set(tenant.name, tenant)
    })

    if (version >= 4) {
      const audit = requireRecord(field(snap, 'audit'), 'audit')
      const cp = requireRecord(field(audit, 'checkpoint'), 'audit.checkpoint')
      sm.#auditCheckpoint = Object.freeze({
        seq: requireInteger(field(cp, 'seq'), 'audit.checkpoint.seq', 0, Number.MAX_SAFE_INTEGER),
        hash: requireAuditHash(field(cp, 'hash'), 'audit.checkpoint.hash')
      })
      // entries are taken as stored (hashes not recomputed, order not checked): firstBrokenAuditEntry
      // is what tells whether the chain still holds
      sm.#auditEntries = requireArray(field(audit, 'entries'), 'audit.entries', 0, AUDIT_RETENTION_MAX)
        .map((e, i) => requireAuditEntry(e, `audit.entries[${i}]`))
    }

    const tokens = version === 1 ? [] : requireArray(field(snap, 'tokens'), 'tokens', 0, Number.MAX_SAFE_INTEGER)
    tokens.forEach((t, i) => {
      const token = requireJoinToken(t, `tokens[${i}]`)
      if (sm.#tokens.has(token.id)) {
        throw new InvalidArgumentError(`join token ${token.id} appears twice`, { id: token.id })
      }
      sm.#tokens.set(token.id, token)
    })

    const s3Keys = version >= 5 ? requireArray(field(snap, 's3Keys'), 's3Keys', 0, S3_KEYS_MAX) : []
    s3Keys.forEach((k, i) => {
      const key = requireS3Key(k, `s3Keys[${i}]`)
      if (sm.#s3Keys.has(key.accessKeyId)) throw new InvalidArgumentError(`access key ${key.accessKeyId} appears twice`, { accessKeyId: key.accessKeyId })
      sm.#s3Keys.set(key.accessKeyId, key)
    })

    const config = version >= 3 ? requireArray(field(snap, 'config'), 'config', 0, 16) : []
    config.forEach((c, i) => {
      const pair = requireArray(c, `config[${i}]`, 2, 2)
      const [key, value] = requireConfigValue(pair[0], pair[1])
      if (sm.#config.has(key)) throw new InvalidArgumentError(`setting ${key} appears twice`, { key })
      sm.#config.set(key, value)
    })

    const extents = requireArray(field(snap, 'extents'), 'extents', 0, Number.MAX_SAFE_INTEGER)
    extents.forEach((e, i) => {
      const plain = requireExtent(e, `extents[${i}]`)
      const rawMove = field(requireRecord(e, `extents[${i}]`), 'move')
      let extent: ExtentRecord = plain
      if (rawMove !== undefined) {
        const move = requireMove(requireRecord(rawMove, `extents[${i}].move`), `extents[${i}].move.`)
        try {
          checkMove(plain.id, plain.replicas, move)
        } catch (err) {
          throw new InvalidArgumentError(`extents[${i}].move does not fit its replicas: ${(err as Error).message}`, { id: plain.id })
        }
        extent = Object.freeze({ ...plain, move: Object.freeze(move) })
      }
      if (sm.#extents.has(extent.id)) {
        throw new InvalidArgumentError(`extent ${extent.id} appears twice`, { id: extent.id })
      }
      sm.#extents.set(extent.id, extent)
    })

    // files' metadata and explicit directories since version 5; shared extents since version 7
    const since5 = typeof version === 'number' && version >= 5
    const shared = version === SNAPSHOT_VERSION
    const files = requireArray(field(snap, 'files'), 'files', 0, Number.MAX_SAFE_INTEGER)
    files.forEach((f, i) => {
      const obj = requireRecord(f, `files[${i}]`)
      const path = requirePath(field(obj, 'path'), `files[${i}].path`)
      if (path !== field(obj, 'path') || path === '/') {
        throw new InvalidArgumentError(`files[${i}].path is not a canonical file path`, { path })
      }
      if (sm.#files.has(path)) {
        throw new InvalidArgumentError(`file ${path} appears twice`, { path })
      }
      const size = requireInteger(field(obj, 'size'), `files[${i}].size`, 0, Number.MAX_SAFE_INTEGER)
      const mtimeMs = requireInteger(field(obj, 'mtimeMs'), `files[${i}].mtimeMs`, 0, Number.MAX_SAFE_INTEGER)
      const version = requireInteger(field(obj, 'version'), `files[${i}].version`, 1, Number.MAX_SAFE_INTEGER)
      const ids = requireArray(field(obj, 'extents'), `files[${i}].extents`, 0, FILE_EXTENTS_MAX)
      const records: ExtentRecord[] = []
      const seen = new Set<string>()
      let total = 0
      ids.forEach((x, j) => {
        const id = requireExtentId(x, `files[${i}].extents[${j}]`)
        const record = sm.#extents.get(id)
        if (record === undefined) {
          throw new InvalidArgumentError(`file ${path} lists missing extent ${id}`, { path, id })
        }
        // before version 7 no two references to one extent existed
        if (!shared && (sm.#refs.has(id) || seen.has(id))) {
          throw new InvalidArgumentError(`extent ${id} is listed by two files`, { path, id })
        }
        seen.add(id)
        records.push(record)
        total += record.size
      })
      if (total !== size) {
        throw new InvalidArgumentError(`file ${path} has size ${size} but its extents hold ${total} bytes`, { path })
      }
      // Throws IsADirectory / NotADirectory on a conflict; rethrown as InvalidArgument below.
      try {
        sm.#checkFilePath(path)
      } catch (err) {
        throw new InvalidArgumentError(`file ${path} conflicts with another file: ${(err as Error).message}`, { path })
      }
      const meta = since5 ? requireFileMeta(field(obj, 'meta'), `files[${i}].meta`) : undefined
      const file: FileRecord = Object.freeze({
        path, size, mtimeMs, version, extents: Object.freeze(records.map((r) => r.id)) as string[], ...(meta !== undefined ? { meta } : {})
      })
      sm.#replaceFile(file, records)
    })

    const dirs = since5 ? requireArray(field(snap, 'dirs'), 'dirs', 0, EXPLICIT_DIRS_MAX) : []
    dirs.forEach((d, i) => {
      const path = requirePath(d, `dirs[${i}]`)
      const { tenant, path: inTenant } = fromInternalPath(path)
      if (path !== d || path === '/' || (tenant !== null && inTenant === '/')) {
        throw new InvalidArgumentError(`dirs[${i}] is not a canonical directory path`, { path })
      }
      if (sm.#explicit.has(path)) throw new InvalidArgumentError(`directory ${path} appears twice`, { path })
      if (sm.#files.has(path)) throw new InvalidArgumentError(`directory ${path} is also a file`, { path })
      for (const a of ancestors(path)) {
        if (sm.#files.has(a)) throw new InvalidArgumentError(`directory ${path} lies under file ${a}`, { path, file: a })
      }
      sm.#makeExplicit(path)
    })

    // stages since version 6: after the files, so an extent a file lists is known as owned
    const stages = typeof version === 'number' && version >= 6 ? requireArray(field(snap, 'stages'), 'stages', 0, STAGES_MAX) : []
    stages.forEach((t, i) => {
      const obj = requireRecord(t, `stages[${i}]`)
      const id = requireStageId(field(obj, 'stage'), `stages[${i}].stage`)
      const path = requirePath(field(obj, 'path'), `stages[${i}].path`)
      if (path !== field(obj, 'path') || path === '/') throw new InvalidArgumentError(`stages[${i}].path is not a canonical file path`, { path })
      if (sm.#stages.has(id)) throw new InvalidArgumentError(`stage ${id} appears twice`, { stage: id })
      const ids = requireArray(field(obj, 'extents'), `stages[${i}].extents`, 0, FILE_EXTENTS_MAX).map((x, j) => {
        const xid = requireExtentId(x, `stages[${i}].extents[${j}]`)
        if (!sm.#extents.has(xid)) throw new InvalidArgumentError(`stage ${id} lists missing extent ${xid}`, { stage: id, id: xid })
        if (sm.#refs.has(xid) || sm.#staged.has(xid)) throw new InvalidArgumentError(`extent ${xid} is listed twice`, { stage: id, id: xid })
        sm.#staged.set(xid, id)
        return xid
      })
      const rawTransfer = version === SNAPSHOT_VERSION ? field(obj, 'transfer') : undefined
      const transfer = rawTransfer === undefined ? undefined : requirePath(rawTransfer, `stages[${i}].transfer`)
      sm.#stages.set(id, {
        stage: id,
        path,
        node: requirePeerId(field(obj, 'node'), `stages[${i}].node`),
        extents: ids,
        createdAtMs: requireInteger(field(obj, 'createdAtMs'), `stages[${i}].createdAtMs`, 0, Number.MAX_SAFE_INTEGER),
        ...(transfer !== undefined ? { transfer } : {})
      })
    })

    // transfers since version 7: each outgoing one freezes a file whose extents it alone references
    if (version === SNAPSHOT_VERSION) {
      const transfers = requireRecord(field(snap, 'transfers'), 'transfers')
      requireArray(field(transfers, 'out'), 'transfers.out', 0, TRANSFERS_MAX).forEach((t, i) => {
        const record = requireTransferRecord(t, `transfers.out[${i}]`)
        const file = sm.#files.get(record.from)
        if (sm.#outgoing.has(record.tx)) throw new InvalidArgumentError(`transfer ${record.tx} appears twice`, { tx: record.tx })
        if (file === undefined || sm.#frozen.has(record.from)) throw new InvalidArgumentError(`transfer ${record.tx} has no file of its own`, { tx: record.tx })
        if (file.extents.some((x) => sm.#refs.get(x) !== 1)) throw new InvalidArgumentError(`transfer ${record.tx} moves shared extents`, { tx: record.tx })
        sm.#outgoing.set(record.tx, record)
        sm.#freeze(record.tx, file)
      })
      requireArray(field(transfers, 'in'), 'transfers.in', 0, TRANSFERS_MAX).forEach((t, i) => {
        const outcome = requireTransferOutcome(t, `transfers.in[${i}]`)
        if (sm.#incoming.has(outcome.tx)) throw new InvalidArgumentError(`transfer ${outcome.tx} appears twice`, { tx: outcome.tx })
        sm.#incoming.set(outcome.tx, outcome)
      })
    }
    return sm
  }
}

/** true, false or absent (false). */
function requireOptionalBoolean (value: unknown, what: string): boolean {
  if (value !== undefined && typeof value !== 'boolean') throw new InvalidArgumentError(`${what} must be true, false or absent`, { field: what })
  return value === true
}

/** A tenant's files all live under its root: two paths of one operation lie in one namespace. */
function requireSameNamespace (from: string, to: string): void {
  const [a, b] = [fromInternalPath(from), fromInternalPath(to)]
  if (a.tenant !== b.tenant) throw new InvalidArgumentError('a rename cannot cross namespaces', { from, to })
  if (a.tenant !== null && (a.path === '/' || b.path === '/')) {
    throw new InvalidArgumentError('a tenant\'s root cannot be renamed, nor anything renamed to it', { from, to })
  }
}

function requireCanonicalFilePath (value: unknown, what: string): string {
  const path = requirePath(value, what)
  if (path !== value || path === '/') throw new InvalidArgumentError(`${what} is not a canonical file path`, { field: what })
  return path
}

function requireTransferRecord (value: unknown, what: string): TransferRecord {
  const obj = requireRecord(value, what)
  return Object.freeze({
    tx: requireStageId(field(obj, 'tx'), `${what}.tx`),
    from: requireCanonicalFilePath(field(obj, 'from'), `${what}.from`),
    to: requireCanonicalFilePath(field(obj, 'to'), `${what}.to`),
    node: requirePeerId(field(obj, 'node'), `${what}.node`),
    createdAtMs: requireInteger(field(obj, 'createdAtMs'), `${what}.createdAtMs`, 0, Number.MAX_SAFE_INTEGER)
  })
}

function requireTransferOutcome (value: unknown, what: string): TransferOutcome {
  const obj = requireRecord(value, what)
  const accepted = field(obj, 'accepted')
  if (typeof accepted !== 'boolean') throw new InvalidArgumentError(`${what}.accepted must be a boolean`, { field: `${what}.accepted` })
  return Object.freeze({
    tx: requireStageId(field(obj, 'tx'), `${what}.tx`),
    from: requireCanonicalFilePath(field(obj, 'from'), `${what}.from`),
    to: requireCanonicalFilePath(field(obj, 'to'), `${what}.to`),
    accepted,
    createdAtMs: requireInteger(field(obj, 'createdAtMs'), `${what}.createdAtMs`, 0, Number.MAX_SAFE_INTEGER)
  })
}

/** A stage id: a lower-case UUID, as an extent's. */
function requireStageId (value: unknown, what: string): string {
  return requireExtentId(value, what)
}

/** The `from` and `to` of a move, distinct PeerIds (`prefix` names the fields in errors). */
function requireMove (obj: Fields, prefix: string): ExtentMove {
  const from = requirePeerId(field(obj, 'from'), `${prefix}from`)
  const to = requirePeerId(field(obj, 'to'), `${prefix}to`)
  if (from === to) throw new InvalidArgumentError('from and to are the same node', { from, to })
  return { from, to }
}

/** A move fits a replica set when `from` holds a copy and `to` none. */
function checkMove (id: string, replicas: readonly PeerIdString[], move: ExtentMove): void {
  if (!replicas.includes(move.from)) {
    throw new NotFoundError(`extent ${id} has no replica on ${move.from}`, { id, from: move.from, replicas: [...replicas] })
  }
  if (replicas.includes(move.to)) {
    throw new AlreadyExistsError(`extent ${id} already has a replica on ${move.to}`, { id, to: move.to, replicas: [...replicas] })
  }
}

/**
 * The record with a new replica set. A recorded move survives only while it still fits: once repair
 * has dropped its source or already placed a copy on its target, there is nothing left to move.
 */
function withReplicas (old: ExtentRecord, replicas: PeerIdString[]): ExtentRecord {
  const { move, ...rest } = old
  const keep = move !== undefined && replicas.includes(move.from) && !replicas.includes(move.to)
  return Object.freeze(keep ? { ...rest, replicas, move } : { ...rest, replicas })
}

function requireScope (input: unknown): StateMachineScope {
  const obj = requireRecord(input, 'scope')
  const kind = field(obj, 'kind')
  if (kind === 'all' || kind === 'system') return { kind }
  if (kind !== 'data') throw new InvalidArgumentError('scope.kind must be all, system or data', { field: 'scope.kind' })
  return {
    kind,
    group: requireInteger(field(obj, 'group'), 'scope.group', 1, DATA_GROUPS_MAX),
    groups: requireInteger(field(obj, 'groups'), 'scope.groups', 1, DATA_GROUPS_MAX)
  }
}
