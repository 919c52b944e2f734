import type { AuditEntry } from './audit.js'
import type { PeerIdString } from './metadata.js'
import type { ReplicationStatus } from './replication.js'

/**
 * The cluster overview: what the status page (`dfs node start --http-listen`) and `dfs cluster top`
 * show, as one node sees it, in one answer of bounded size (`cluster.overview`). Membership, groups
 * and copies are this node's applied state (no quorum needed: the overview answers when the
 * cluster is in trouble, which is when an operator looks); replication figures are the replication
 * service's own (a linearizable read, bounded by a deadline: `replication.error` says why it is
 * missing).
 *
 * It holds no secret: no token, no key, no file content. Audit entries (PeerIds, operations, paths)
 * are included only for a caller that may read the audit log, and on the page only when the node
 * was started with `--http-audit`.
 */

/** Most members an overview lists (the rest are counted in `nodesTotal`). */
export const OVERVIEW_NODES_MAX = 256
/** Most metadata groups an overview lists. */
export const OVERVIEW_GROUPS_MAX = 64
/** Newest audit entries an overview carries. */
export const OVERVIEW_AUDIT_ENTRIES = 20
/** Longest string field of an audit entry in an overview (longer ones are cut with a trailing `…`). */
export const OVERVIEW_AUDIT_FIELD_MAX = 160

export type OverviewHealth = 'healthy' | 'suspected' | 'failed'

/** One member in an overview. */
export interface OverviewNode {
  id: PeerIdString
  name: string
  region: string
  health: OverviewHealth
  /** The node that answered the overview. */
  self: boolean
  /** Being drained (`dfs cluster drain`): it takes no new copies. */
  draining: boolean
  /** Bytes of extents it stores, as its last heartbeat reported them. */
  usedBytes: number
  /** Bytes it may hold, as last reported; null before its first heartbeat reached the answering node. */
  capacityBytes: number | null
  /** Metadata groups in which it votes, ascending. */
  voterIn: number[]
  /** Metadata groups it leads, ascending. */
  leads: number[]
  /** Extent copies metadata places on it (moves' targets not yet counted). */
  copies: number
  /** Bytes of those copies. */
  copyBytes: number
}

/** One metadata Raft group in an overview. */
export interface OverviewGroup {
  /** 0: the system group (or the only one); 1..n: data groups. */
  group: number
  kind: 'system' | 'data' | 'all'
  /** How many of the metadata shards it owns. */
  shards: number
  leader: PeerIdString | null
  term: number
  voters: PeerIdString[]
  learners: PeerIdString[]
}

/**
 * Replication in an overview: the replication service's status (every field absent when it did not
 * answer: see `error`), and the moves recorded in metadata.
 */
export interface OverviewReplication extends Partial<ReplicationStatus> {
  /** Extents with a rebalance or drain move recorded and not yet switched (the service's figure, else this node's applied state). */
  movesRecorded: number
  /** Why the replication service's figures are absent (no service, no quorum in time…). */
  error?: string
}

/** An audit entry as an overview shows it: without its hash, strings cut to OVERVIEW_AUDIT_FIELD_MAX. */
export type OverviewAuditEntry = Omit<AuditEntry, 'hash'>

/** `cluster.overview` result (and `GET /api/overview` of the status page). */
export interface ClusterOverview {
  clusterId: string
  /** The node that answered. */
  node: PeerIdString
  /** When it was collected (the answering node's clock, ms since the epoch). */
  timeMs: number
  /** The system group's leader and term as the answering node knows them. */
  leader: PeerIdString | null
  term: number
  /** Members, at most OVERVIEW_NODES_MAX, by name. */
  nodes: OverviewNode[]
  /** How many members there are (more than `nodes.length` when the list was cut). */
  nodesTotal: number
  /** Metadata groups, at most OVERVIEW_GROUPS_MAX, by number. */
  groups: OverviewGroup[]
  replication: OverviewReplication
  /** The newest audit entries (at most OVERVIEW_AUDIT_ENTRIES, oldest first); null: not shown to this caller. */
  audit: OverviewAuditEntry[] | null
}
