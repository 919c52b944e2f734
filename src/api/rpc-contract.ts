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
import type { Consistency, ClusterConfig, DirEntry, ExtentRecord, MetadataGroupInfo, PeerIdString } from './metadata.js'
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

/** `fs.put` params; the body is the file's bytes. */
export interface FsPutParams {
  path: string
  /** Acknowledge once a quorum (default) or every copy is durable. */
  sync?: WriteSync
}

/** `fs.put` result. */
export interface PutResult {
  path: string
  size: number
  /** How many extents the file was stored as. */
  extents: number
}

/** Params of the reads (`fs.get`, `fs.stat`). */
export interface FsReadParams {
  path: string
  /** How current the metadata read must be (default linearizable; see Consistency). */
  consistency?: Consistency
}

/** `fs.ls` params: one page of a directory. */
export interface FsListParams extends FsReadParams {
  /** The name after which the page starts (the last name of the previous page). */
  after?: string
  /** Most entries in the page (1..LIST_PAGE_MAX; the node's page size when absent). */
  limit?: number
}

/** `fs.rm` params. */
export interface FsPathParams {
  path: string
}

/** `fs.stat` result. */
export interface StatResult {
  path: string
  size: number
  version: number
  mtimeMs: number
  extents: ExtentRecord[]
  /** What the metadata read served: `stale` only when it was asked for. */
  consistency: Consistency
}

/** `fs.get` result: sent before the bytes, which the caller checks extent by extent. */
export interface GetResult {
  path: string
  size: number
  extents: ExtentIdentity[]
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

// ---- cluster.* and node.* (operators) ----

/** `cluster.status` result: the cluster as the node sees it. */
export interface ClusterStatus {
  clusterId: string
  leader: string | null
  term: number
  nodes: { total: number, healthy: number, suspected: number, failed: number }
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
  /** The setting's command-line name: `replication-factor`, `imbalance-threshold` or `fill-limit`. */
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
  /** How long the token is valid (the node's default when absent). */
  ttlMs?: number
}

/** `cluster.token.create` result. */
export interface TokenCreated {
  /** The secret; shown once, the cluster keeps only its hash. */
  token: string
  id: string
  expiresAtMs: number
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

/** `node.info` result: who the node is and who it sees calling. */
export interface NodeInfoResult {
  /** The node's PeerId. */
  id: string
  /** The caller's PeerId, as Noise proved it. */
  peer: string
}

// ---- extent.* (node to node) ----

/** `extent.get` and `extent.delete` params. */
export interface ExtentIdParams {
  id: string
}

/** `extent.get` result: sent before the bytes, as the serving node's store records the extent. */
export interface ExtentGetResult {
  id: string
  size: number
  checksum: string
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
 * Every method a node's RPC server registers. `test.partition` is registered only on a node started
 * with DFS_TEST_FAULTS=1.
 */
export interface RpcContract {
  'fs.put': { kind: 'upload', action: 'fs.write', params: FsPutParams, result: PutResult }
  'fs.get': { kind: 'download', action: 'fs.read', params: FsReadParams, result: GetResult }
  'fs.stat': { kind: 'unary', action: 'fs.read', params: FsReadParams, result: StatResult }
  'fs.ls': { kind: 'unary', action: 'fs.read', params: FsListParams, result: ListResult }
  'fs.rm': { kind: 'unary', action: 'fs.write', params: FsPathParams, result: RemoveResult }

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
  'cluster.join': { kind: 'unary', action: 'cluster.join', params: JoinRequest, result: JoinResult }
  'cluster.nodes.remove': { kind: 'unary', action: 'cluster.admin', params: NodeParams, result: RemovedNode }
  'node.info': { kind: 'unary', action: 'cluster.read', params: NoParams, validated: UnreadParams, result: NodeInfoResult }

  'extent.get': { kind: 'download', action: 'extent.read', params: ExtentIdParams, result: ExtentGetResult }
  'extent.put': { kind: 'upload', action: 'extent.write', params: ExtentIdentity, result: EmptyResult }
  'extent.replicate': { kind: 'unary', action: 'extent.write', params: ExtentReplicateParams, result: ExtentReplicateResult }
  'extent.delete': { kind: 'unary', action: 'extent.write', params: ExtentIdParams, result: EmptyResult }

  'test.partition': { kind: 'unary', action: 'cluster.admin', params: PartitionParams, result: PartitionResult }
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
