/**
 * The typed contract of `/dfs/rpc/1.0.0`: every method a node serves, with the action it is
 * authorized as, how it moves its data, what a caller sends and what it answers. The node's handlers
 * (`defineMethod`) and the client (`RpcClient.call`, `upload`, `download`) are both typed by this
 * table, so a handler whose answer drifts from what callers read is a compile error on both sides.
 *
 * The shapes are the wire's (CBOR maps): plain JSON-able values, field names exactly as they travel.
 * The node still checks every call's params at run time (a caller is never trusted); this table only
 * says what a well-behaved caller sends and what the handler returns.
 */
import type { AuditEntry } from './audit.js'
import type { ExtentCodec, ExtentEncoding } from './codec.js'
import type { ClusterEventsParams, ClusterEventsResult } from './events.js'
import type { ClusterOverview } from './overview.js'
import type { Consistency, ClusterConfig, DirEntry, ExtentRecord, MetadataGroupInfo, PeerIdString, Role, TenantInfo, TenantRecord, UserRecord } from './metadata.js'
import type { RebalanceMove } from './rebalance.js'
import type { DrainResult, ExtentIdentity, MoveProgress, RebalanceResult, ReplicationStatus, UndrainResult, WriteSync } from './replication.js'
import type { RpcCallKind } from './rpc.js'

/**
 * The actions authorization knows (`src/security` grants them to roles). Each method is authorized
 * as exactly one.
 */
export type RpcAction =
  | 'fs.read'
  | 'fs.write'
  | 'cluster.read'
  | 'cluster.admin'
  /** Asking to join: open to any peer; the join token it presents is the authorization. */
  | 'cluster.join'
  /** Node-to-node extent reads: members only. */
  | 'extent.read'
  /** Node-to-node extent writes (store, copy, delete): members only. */
  | 'extent.write'
  /** Node-to-node queries (e.g. another node's repair state): members only. */
  | 'node.peer'
  /** Granting, revoking and listing users and their S3 access keys: a cluster-wide admin, or a tenant's admin within its tenant. */
  | 'user.admin'
  /** Reading the audit log: a cluster-wide admin, or a tenant's admin (its tenant's entries only). */
  | 'audit.read'

/** Params of a method that takes none: callers send an empty map. */
export type NoParams = Record<string, never>

/**
 * What the validator of a method that takes no params hands its handler: the map as sent, unread
 * (keys a caller adds are ignored, not refused).
 */
export type UnreadParams = Record<string, unknown>

/** The answer of a method that has nothing to say but that it succeeded. */
export type EmptyResult = Record<string, never>

// ---- fs.* (files, for users) ----

/**
 * What every fs.* call may add: the tenant whose namespace the path is in. Only a cluster-wide admin
 * names one (anyone else acts in its own namespace, and naming another tenant is PermissionDenied).
 */
export interface FsNamespaceParams {
  tenant?: string
}

/** `fs.put` params; the body is the file's bytes. */
export interface FsPutParams extends FsNamespaceParams {
  path: string
  /** The file's size when the caller knows it: a put past its tenant's quota is refused before any byte is sent. */
  size?: number
  /** Acknowledge once a quorum (default) or every copy is durable. */
  sync?: WriteSync
  /** Kept with the file (FileMeta.contentType). */
  contentType?: string
  /** User metadata kept with the file (FileMeta.user). */
  meta?: Record<string, string>
  /**
   * `true`: the node computes the MD5 of the bytes as they arrive and keeps its hex as the file's
   * etag. A string: the same, and it is the MD5 the bytes must have (base64, as HTTP's Content-MD5):
   * any other fails the put with BadDigest and stores nothing.
   */
  md5?: true | string
}

/** `fs.put` result. */
export interface PutResult {
  path: string
  size: number
  /** How many extents the file was stored as. */
  extents: number
  /** The file's etag, when the put asked for `md5`. */
  etag?: string
}

/** What a file's writer said about it, as `fs.stat` and `fs.get` answer it (each field only when set). */
export interface FileMetaFields {
  contentType?: string
  etag?: string
  /** User metadata. */
  meta?: Record<string, string>
}

/** Params of the reads (`fs.get`, `fs.stat`). */
export interface FsReadParams extends FsNamespaceParams {
  path: string
  /** How current the metadata read must be (default linearizable; see Consistency). */
  consistency?: Consistency
  /** `fs.get` only: the first byte to read (default 0); past the file's end is InvalidRange. */
  offset?: number
  /** `fs.get` only: most bytes to read from `offset` (default: to the end; clipped at the end). */
  length?: number
  /** `fs.stat` only: index of the first extent of the page (default 0; at most the file's number of extents). */
  extentsFrom?: number
  /** `fs.stat` only: the file version the page must be of (FailedPrecondition when the file is at another). */
  version?: number
}

/**
 * Most extents one `fs.stat` answer lists (a page: see StatResult.extentsTotal). A page of
 * ExtentRecords with three replicas is about 300 KiB, well inside one RPC frame (FRAME_BYTES_MAX).
 */
export const STAT_EXTENTS_MAX = 1000
/** Most extents one `fs.get` answer lists (see GetResult.extentsTotal). */
export const GET_EXTENTS_MAX = 1000

/** `fs.ls` params: one page of a directory. */
export interface FsListParams extends FsReadParams {
  /** The name after which the page starts (the last name of the previous page). */
  after?: string
  /** Most entries in the page (1..LIST_PAGE_MAX; the node's page size when absent). */
  limit?: number
}

/** `fs.rm` params. */
export interface FsPathParams extends FsNamespaceParams {
  path: string
}

/** `fs.stat` result. */
export interface StatResult extends FileMetaFields {
  path: string
  size: number
  version: number
  mtimeMs: number
  /**
   * A page of the version's extents: at most STAT_EXTENTS_MAX of them, from index `extentsFrom`
   * (param, default 0). A caller that wants them all asks for the next page with `extentsFrom` and
   * `version` until it has `extentsTotal`, and starts over on FailedPrecondition (a newer version).
   */
  extents: ExtentRecord[]
  /** How many extents the version has (an older node's answer lacks it and lists them all). */
  extentsTotal: number
  /** What the metadata read served: `stale` only when it was asked for. */
  consistency: Consistency
}

/**
 * `fs.get` result: sent before the bytes, which the caller checks extent by extent. The body is the
 * file's bytes [offset, offset + length), exactly `length` of them.
 */
export interface GetResult extends FileMetaFields {
  path: string
  /** The whole file's size. */
  size: number
  /** The file version's mtime and version (as `fs.stat` answers them), for the headers sent before the bytes. */
  mtimeMs: number
  version: number
  /** The first byte served. */
  offset: number
  /** Bytes served (the range asked for, clipped at the file's end). */
  length: number
  /**
   * The first GET_EXTENTS_MAX (at most) of the extents that overlap the range, in file order, and the
   * file offset at which the first of them starts. A caller checks the checksum of each listed extent
   * the range covers whole. The others — the first and last when the range cuts them, and those past
   * the listed ones — only the node checks: it reads whole extents and checks each against the
   * checksum metadata holds (ExtentReader) before it sends any of its bytes.
   */
  extents: ExtentIdentity[]
  /** How many extents overlap the range (an older node's answer lacks it and lists them all). */
  extentsTotal: number
  extentsOffset: number
  /** What the metadata read served. */
  consistency: Consistency
}

/** `fs.ls` result. */
export interface ListResult {
  entries: DirEntry[]
  /** More entries follow the last one: ask again with `after`. */
  more: boolean
  consistency: Consistency
}

/** `fs.rm` result. */
export interface RemoveResult {
  path: string
  /** Extents released (their copies are deleted in the background). */
  freed: number
}

/** `fs.mv` params: both paths in the caller's namespace (and in one top-level directory of it). */
export interface FsRenameParams extends FsNamespaceParams {
  from: string
  to: string
  /** Replace a file at `to` (default true, as POSIX rename does); false: AlreadyExists. */
  replace?: boolean
}

/** `fs.mv` result. */
export interface RenameResult {
  from: string
  to: string
}

/** `fs.cp` params: both paths in the caller's namespace. */
export interface FsCopyParams extends FsNamespaceParams {
  from: string
  to: string
  /** Replace a file at `to` (default true); false: AlreadyExists. */
  replace?: boolean
  /** The copy's content type and user metadata instead of the source's (with `replaceMeta`, also when absent: none). */
  contentType?: string
  meta?: Record<string, string>
  replaceMeta?: boolean
}

/** `fs.cp` result. */
export interface CopyResult {
  from: string
  to: string
  size: number
  version: number
  mtimeMs: number
  etag?: string
  /** The copy shares the source's extents (same metadata group): no byte was copied. */
  shared: boolean
}

/** `fs.utime` params: a file's new modification time. */
export interface FsUtimeParams extends FsNamespaceParams {
  path: string
  mtimeMs: number
}

/** `fs.utime` result. */
export interface UtimeResult {
  path: string
  mtimeMs: number
}

/** `fs.mkdir` and `fs.rmdir` result: the directory, in the caller's namespace. */
export interface DirResult {
  path: string
}

/**
 * `fs.compose` params: `to` becomes a file of the parts' extents in order, and the parts disappear
 * (ComposeFile: no byte moves). Every path is in the caller's namespace and in the top-level
 * directory of `to`.
 */
export interface FsComposeParams extends FsNamespaceParams {
  to: string
  /** 1..COMPOSE_PARTS_MAX distinct files. */
  parts: string[]
  contentType?: string
  meta?: Record<string, string>
  /** The etag to keep with the file (the caller computes it, e.g. S3's multipart ETag). */
  etag?: string
  /** Replace a file at `to` (default true); false: AlreadyExists. */
  replace?: boolean
}

/** What the `fs.compose` validator makes of FsComposeParams: the target as `path` (so audit records it). */
export interface FsComposeValidated extends FsNamespaceParams {
  path: string
  parts: string[]
  contentType?: string
  meta?: Record<string, string>
  etag?: string
  replace: boolean
}

/** `fs.compose` result. */
export interface ComposeResult {
  path: string
  size: number
  /** How many extents the file has. */
  extents: number
  etag?: string
}

// ---- cluster.* and node.* (operators) ----

/** `cluster.status` result: the cluster as the node sees it. */
export interface ClusterStatus {
  clusterId: string
  leader: string | null
  term: number
  nodes: { total: number, healthy: number, suspected: number, failed: number }
  /** The answering node runs with the test fault hook on (`node start --test-faults` and DFS_TEST_FAULTS=1): never in production. */
  testFaults: boolean
}

/** One member in `cluster.nodes`. */
export interface ClusterNodeInfo {
  id: string
  name: string
  addrs: string[]
  region: string
  health: 'healthy' | 'suspected' | 'failed'
  voter: boolean
  /** Being drained: it takes no new copies (`dfs cluster drain`). */
  draining: boolean
  /** Bytes of extents it stores, as it last reported. */
  usedBytes: number
  /**
   * Bytes it may hold, as it last reported; null until its first heartbeat reached the serving node
   * (until then placement puts no new copy on it).
   */
  capacityBytes: number | null
}

/** `cluster.nodes` result. */
export interface ClusterNodesResult {
  nodes: ClusterNodeInfo[]
}

/** `cluster.shards` result: the shard map as the node last applied it. */
export interface ClusterShards {
  shardCount: number
  groups: Array<Omit<MetadataGroupInfo, 'leader'> & { leader: string | null }>
  /** Every shard with its group, the nodes that hold a replica (voters and learners) and the group's leader. */
  shards: Array<{ shard: number, group: number, replicas: string[], voters: string[], leader: string | null }>
}

/** `cluster.replication` params. */
export interface ClusterReplicationParams {
  /** Only this node's figures: do not ask the repair coordinator what it is copying. */
  here?: boolean
}

/** `cluster.config.set` params, as `dfs cluster config set` takes them. */
export interface ConfigSetParams {
  /** The setting's command-line name: `replication-factor`, `imbalance-threshold`, `fill-limit` or `audit-retention`. */
  key: string
  /** Its new value, as text (a numeric setting takes a number). */
  value: string
}

/** What the `cluster.config.set` validator makes of ConfigSetParams: the setting and its typed value. */
export interface ConfigSetting {
  key: keyof ClusterConfig
  value: number | string
}

/** Kinds of policy `cluster.policy.set` selects. */
export type PolicyKind = 'placement' | 'rebalance'

/** `cluster.policy.set` params and result. */
export interface PolicySelection {
  kind: PolicyKind
  /** The policy's name (an installed `placement` or `rebalance` service). */
  name: string
}

/** `cluster.rebalance` params. */
export interface RebalanceParams {
  /** Plan only, record nothing. */
  dryRun?: boolean
  /** Answer once every recorded move is done. */
  wait?: boolean
}

/** `cluster.rebalance.progress` params: the moves to report on. */
export interface MoveProgressParams {
  moves: Array<Pick<RebalanceMove, 'extent' | 'from' | 'to'>>
}

/** `cluster.drain` params. */
export interface DrainParams {
  /** The member's PeerId or name. */
  node: string
  /** Answer once no extent lists a copy on the node. */
  wait?: boolean
}

/** `cluster.undrain` and `cluster.nodes.remove` params. */
export interface NodeParams {
  /** The member's PeerId or name. */
  node: string
}

/** `cluster.drain` result. */
export interface ClusterDrainResult extends DrainResult {
  /** The drained member's name. */
  name: string
}

/** `cluster.undrain` result. */
export interface ClusterUndrainResult extends UndrainResult {
  name: string
}

/** `cluster.token.create` params. */
export interface TokenCreateParams {
  /** How long the token is valid (the node's default when absent; capped, see JOIN_TOKEN_TTL_MS_MAX). */
  ttlMs?: number
  /** How many nodes may join with it (default 1). */
  uses?: number
  /** The only PeerId that may join with it. */
  forPeer?: string
}

/** `cluster.token.create` result. */
export interface TokenCreated {
  /** The secret; shown once, the cluster keeps only its hash. */
  token: string
  id: string
  expiresAtMs: number
  /** How many nodes may join with it. */
  uses: number
}

/** A live join token as `cluster.token.list` shows it: never its secret nor the secret's hash. */
export interface TokenInfo {
  id: string
  expiresAtMs: number
  /** Joins left; null: any number (a token of an older version). */
  usesLeft: number | null
  /** The only PeerId that may join with it, or null. */
  forPeer: string | null
  createdBy: string
}

/** `cluster.token.list` result, sorted by id. */
export interface TokenListResult {
  tokens: TokenInfo[]
}

/** `cluster.token.revoke` params and result. */
export interface TokenIdParams {
  id: string
}

/** `cluster.identify` params: a fresh nonce of the caller's (base64url of 16 to 64 random bytes). */
export interface IdentifyParams {
  nonce: string
}

/**
 * `cluster.identify` result: the cluster's public key and its signature over a domain string, the
 * cluster id, the nonce, the caller's PeerId and the answering node's PeerId (see
 * src/security/cluster-key.ts), so it proves the cluster to this caller on this connection only.
 */
export interface IdentifyResult {
  clusterId: string
  /** base64url of the raw Ed25519 public key. */
  publicKey: string
  /** base64url of the signature. */
  signature: string
}

/** `cluster.join` params: a node asking to be admitted, as the Noise-proven PeerId of the call. */
export interface JoinRequest {
  token: string
  name: string
  region: string
  /** The joining node's listen addresses (multiaddr strings). */
  addrs: string[]
}

/** `cluster.join` result. */
export interface JoinResult {
  clusterId: string
  members: Array<{ id: string, addrs: string[] }>
}

/** `cluster.nodes.remove` result. */
export interface RemovedNode {
  id: string
  name: string
}

/**
 * `cluster.audit` params: the newest entries that match (at most `limit`, 1..10,000, default 100),
 * or with `verify` the check of the whole retained chain (the filters are then ignored).
 */
export interface AuditQueryParams {
  limit?: number
  /** Only entries recorded at or after this time (ms since the epoch). */
  sinceMs?: number
  /** Only entries of this caller (PeerId). */
  user?: string
  /** Only failed and refused calls. */
  failed?: boolean
  /** Only entries before this seq: the next (older) page after a page whose first entry it is. */
  beforeSeq?: number
  verify?: boolean
}

/** `cluster.audit` result: matching entries, oldest first (newest last). */
export interface AuditPage {
  entries: AuditEntry[]
  /** Older matching entries exist and fit the limit: ask again with `beforeSeq` = the first entry's seq. */
  more: boolean
  /** The node that served the read. */
  node: PeerIdString
}

/**
 * `cluster.audit` result with `verify`: the serving node's retained chain checked from its checkpoint
 * (a broken chain is the error AuditChainBroken, `details.seq` naming the first bad entry).
 */
export interface AuditVerification {
  verified: true
  /** Entries checked. */
  entries: number
  /** The last entry's hash (the checkpoint's when none is retained). */
  head: string
  node: PeerIdString
}

/** `node.info` result: who the node is and who it sees calling. */
export interface NodeInfoResult {
  /** The node's PeerId. */
  id: string
  /** The caller's PeerId, as Noise proved it. */
  peer: string
}

// ---- user.* and tenant.* (administration) ----

/** `user.grant` params: the role a PeerId gets, cluster-wide or within a tenant. */
export interface UserGrantParams {
  id: PeerIdString
  role: Role
  /**
   * The tenant the grant is bound to; null or absent: cluster-wide for a cluster-wide admin, the
   * caller's own tenant for a tenant admin.
   */
  tenant?: string | null
}

/** `user.revoke` params and result. */
export interface UserIdParams {
  id: PeerIdString
}

/** `user.list` result (a tenant admin sees its tenant's users only). */
export interface UserListResult {
  users: UserRecord[]
}

/** `s3.key.create` params: whose key (default: the caller). */
export interface S3KeyCreateParams {
  user?: PeerIdString
}

/** `s3.key.create` result: the only answer that ever carries the secret. */
export interface S3KeyCreated {
  accessKeyId: string
  secretAccessKey: string
  user: PeerIdString
}

/** An access key as `s3.key.list` shows it: never its secret. */
export interface S3KeyInfo {
  accessKeyId: string
  user: PeerIdString
  createdAtMs: number
}

/** `s3.key.list` result, sorted by id (a tenant admin sees its tenant's users' keys only). */
export interface S3KeyListResult {
  keys: S3KeyInfo[]
}

/** `s3.key.revoke` params and result. */
export interface S3KeyIdParams {
  accessKeyId: string
}

/** `tenant.create` and `tenant.set` params: a limit left out is unchanged (none on create); null removes it. */
export interface TenantParams {
  name: string
  quotaBytes?: number | null
  quotaFiles?: number | null
  requestRate?: number | null
}

/** `tenant.remove` params and result. */
export interface TenantNameParams {
  name: string
}

/** `tenant.list` result. */
export interface TenantListResult {
  tenants: TenantInfo[]
}

// ---- extent.* (node to node) ----

/** `extent.get` and `extent.delete` params. */
export interface ExtentIdParams {
  id: string
}

/**
 * `extent.get` params: with `encoded: true` the caller takes the bytes as the serving node stores
 * them (the result then names their codec); without it (and from nodes that ignore it) it gets the
 * logical bytes.
 */
export interface ExtentGetParams extends ExtentIdParams {
  encoded?: boolean
}

/**
 * `extent.get` result: sent before the bytes, as the serving node's store records the extent. The
 * body is `storedSize` bytes of `codec` when both are present, else the `size` logical bytes.
 */
export interface ExtentGetResult {
  id: string
  size: number
  checksum: string
  codec?: ExtentCodec
  storedSize?: number
}

/** `extent.replicate` params. */
export interface ExtentReplicateParams {
  extent: ExtentRecord
  sources: PeerIdString[]
}

/** `extent.replicate` result: whether bytes were copied (false: the local copy was good already). */
export interface ExtentReplicateResult {
  copied: boolean
}

// ---- test.* ----

/** `test.partition` params: the peers to cut off (an empty list heals). */
export interface PartitionParams {
  block: string[]
}

/** `test.crash` params: the crash point to arm (null disarms): see CrashFault. */
export interface CrashParams {
  point: string | null
}

/** `test.crash` result. */
export interface CrashResult {
  armed: string | null
}

/** `test.partition` result. */
export interface PartitionResult {
  blocked: string[]
}

// ---- the table ----

/** One method of the table. */
export interface RpcMethodSpec {
  kind: RpcCallKind
  action: RpcAction
  /** What a caller sends. */
  params: object
  /**
   * What the method's validator returns and its handler sees, when it differs from `params` in more
   * than defaults filled in (e.g. `cluster.config.set` turns a setting's command-line name into its
   * key). Absent: `params`.
   */
  validated?: object
  /** The answer (of a download: the result sent before the bytes). */
  result: unknown
}

/**
 * Every method a node's RPC server registers. `test.partition` and `test.crash` are registered only on a node started
 * with both `--test-faults` and DFS_TEST_FAULTS=1 (see `testFaultsEnabled`).
 */
export interface RpcContract {
  'fs.put': { kind: 'upload', action: 'fs.write', params: FsPutParams, result: PutResult }
  /** `fs.put` whose body is a sequence of pieces, each one extent's bytes, raw or compressed (extent-pieces.ts). */
  'fs.put.encoded': { kind: 'upload', action: 'fs.write', params: FsPutParams, result: PutResult }
  'fs.get': { kind: 'download', action: 'fs.read', params: FsReadParams, result: GetResult }
  'fs.stat': { kind: 'unary', action: 'fs.read', params: FsReadParams, result: StatResult }
  'fs.ls': { kind: 'unary', action: 'fs.read', params: FsListParams, result: ListResult }
  'fs.rm': { kind: 'unary', action: 'fs.write', params: FsPathParams, result: RemoveResult }
  'fs.mv': { kind: 'unary', action: 'fs.write', params: FsRenameParams, result: RenameResult }
  'fs.cp': { kind: 'unary', action: 'fs.write', params: FsCopyParams, result: CopyResult }
  'fs.utime': { kind: 'unary', action: 'fs.write', params: FsUtimeParams, result: UtimeResult }
  'fs.mkdir': { kind: 'unary', action: 'fs.write', params: FsPathParams, result: DirResult }
  'fs.rmdir': { kind: 'unary', action: 'fs.write', params: FsPathParams, result: DirResult }
  'fs.compose': { kind: 'unary', action: 'fs.write', params: FsComposeParams, validated: FsComposeValidated, result: ComposeResult }

  'cluster.status': { kind: 'unary', action: 'cluster.read', params: NoParams, validated: UnreadParams, result: ClusterStatus }
  'cluster.nodes': { kind: 'unary', action: 'cluster.read', params: NoParams, validated: UnreadParams, result: ClusterNodesResult }
  'cluster.shards': { kind: 'unary', action: 'cluster.read', params: NoParams, validated: UnreadParams, result: ClusterShards }
  'cluster.replication': { kind: 'unary', action: 'cluster.read', params: ClusterReplicationParams, result: ReplicationStatus }
  'cluster.config': { kind: 'unary', action: 'cluster.read', params: NoParams, validated: UnreadParams, result: ClusterConfig }
  'cluster.config.set': { kind: 'unary', action: 'cluster.admin', params: ConfigSetParams, validated: ConfigSetting, result: ClusterConfig }
  'cluster.policy.set': { kind: 'unary', action: 'cluster.admin', params: PolicySelection, result: PolicySelection }
  'cluster.rebalance': { kind: 'unary', action: 'cluster.admin', params: RebalanceParams, result: RebalanceResult }
  'cluster.rebalance.progress': { kind: 'unary', action: 'cluster.read', params: MoveProgressParams, result: MoveProgress }
  'cluster.drain': { kind: 'unary', action: 'cluster.admin', params: DrainParams, result: ClusterDrainResult }
  'cluster.undrain': { kind: 'unary', action: 'cluster.admin', params: NodeParams, result: ClusterUndrainResult }
  'cluster.token.create': { kind: 'unary', action: 'cluster.admin', params: TokenCreateParams, result: TokenCreated }
  'cluster.token.list': { kind: 'unary', action: 'cluster.admin', params: NoParams, validated: UnreadParams, result: TokenListResult }
  'cluster.token.revoke': { kind: 'unary', action: 'cluster.admin', params: TokenIdParams, result: TokenIdParams }
  'cluster.identify': { kind: 'unary', action: 'cluster.join', params: IdentifyParams, result: IdentifyResult }
  'cluster.join': { kind: 'unary', action: 'cluster.join', params: JoinRequest, result: JoinResult }
  'cluster.nodes.remove': { kind: 'unary', action: 'cluster.admin', params: NodeParams, result: RemovedNode }
  'node.info': { kind: 'unary', action: 'cluster.read', params: NoParams, validated: UnreadParams, result: NodeInfoResult }
  /** Everything the status page and `dfs cluster top` show, in one bounded answer (see ClusterOverview). */
  'cluster.overview': { kind: 'unary', action: 'cluster.read', params: NoParams, validated: UnreadParams, result: ClusterOverview }
  'cluster.audit': { kind: 'unary', action: 'audit.read', params: AuditQueryParams, result: AuditPage | AuditVerification }
  /** What the serving node observed (src/api/events.ts), long-polled: waits up to `waitMs` for an event after `after`. */
  'cluster.events': { kind: 'unary', action: 'cluster.read', params: ClusterEventsParams, result: ClusterEventsResult }
  /** Another member asking this node's own replication figures (the repair coordinator's `repairing`). */
  'node.replication': { kind: 'unary', action: 'node.peer', params: NoParams, validated: UnreadParams, result: ReplicationStatus }

  'user.grant': { kind: 'unary', action: 'user.admin', params: UserGrantParams, result: UserRecord }
  'user.revoke': { kind: 'unary', action: 'user.admin', params: UserIdParams, result: UserIdParams }
  'user.list': { kind: 'unary', action: 'user.admin', params: NoParams, validated: UnreadParams, result: UserListResult }

  's3.key.create': { kind: 'unary', action: 'user.admin', params: S3KeyCreateParams, result: S3KeyCreated }
  's3.key.list': { kind: 'unary', action: 'user.admin', params: NoParams, validated: UnreadParams, result: S3KeyListResult }
  's3.key.revoke': { kind: 'unary', action: 'user.admin', params: S3KeyIdParams, result: S3KeyIdParams }

  'tenant.create': { kind: 'unary', action: 'cluster.admin', params: TenantParams, result: TenantRecord }
  'tenant.set': { kind: 'unary', action: 'cluster.admin', params: TenantParams, result: TenantRecord }
  'tenant.list': { kind: 'unary', action: 'cluster.admin', params: NoParams, validated: UnreadParams, result: TenantListResult }
  'tenant.remove': { kind: 'unary', action: 'cluster.admin', params: TenantNameParams, result: TenantNameParams }

  'extent.get': { kind: 'download', action: 'extent.read', params: ExtentGetParams, result: ExtentGetResult }
  'extent.put': { kind: 'upload', action: 'extent.write', params: ExtentIdentity & ExtentEncoding, result: EmptyResult }
  'extent.replicate': { kind: 'unary', action: 'extent.write', params: ExtentReplicateParams, result: ExtentReplicateResult }
  'extent.delete': { kind: 'unary', action: 'extent.write', params: ExtentIdParams, result: EmptyResult }

  'test.partition': { kind: 'unary', action: 'cluster.admin', params: PartitionParams, result: PartitionResult }
  'test.crash': { kind: 'unary', action: 'cluster.admin', params: CrashParams, result: CrashResult }
}

/** A method's name. */
export type RpcMethodName = keyof RpcContract

/** The methods of one kind. */
export type RpcMethodOfKind<K extends RpcCallKind> = { [M in RpcMethodName]: RpcContract[M]['kind'] extends K ? M : never }[RpcMethodName]
export type UnaryMethodName = RpcMethodOfKind<'unary'>
export type UploadMethodName = RpcMethodOfKind<'upload'>
export type DownloadMethodName = RpcMethodOfKind<'download'>

/** What a caller of `M` sends. */
export type RpcParams<M extends RpcMethodName> = RpcContract[M]['params']
/** What `M`'s validator returns and its handler sees. */
export type RpcValidatedParams<M extends RpcMethodName> = RpcContract[M] extends { validated: infer V } ? V : RpcContract[M]['params']
/** What `M` answers (a download: before its bytes). */
export type RpcResult<M extends RpcMethodName> = RpcContract[M]['result']
/** The action `M` is authorized as. */
export type RpcActionOf<M extends RpcMethodName> = RpcContract[M]['action']

/** Fails to compile when an entry of the table does not fit RpcMethodSpec. */
type Checked<T extends Record<keyof T, RpcMethodSpec>> = T
export type RpcContractChecked = Checked<RpcContract>
