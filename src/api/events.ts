import type { PeerIdString } from './metadata.js'

/**
 * Cluster events: what one node observes happening — members' health as its failure detector judges
 * it, members joining and leaving its applied member list, Raft leaders of the metadata groups as it
 * sees them, and the repairs, moves and scrub findings its replication service works on (repair and
 * moves run on the repair coordinator, the system group's leader, so only that node reports them).
 * Each node keeps the last EVENTS_KEPT of its own in memory; they are not replicated and are gone
 * when the node restarts. `dfs cluster events` reads them through `cluster.events`.
 */

/** Health of a member as a node's failure detector sees it. */
export type EventHealth = 'healthy' | 'suspected' | 'failed'

/** Events a replication service reports (ReplicationServiceInit.onEvent). */
export type ReplicationEvent =
  /** A new copy of `extent` is being made on `target` (a repair: fewer live copies than RF). */
  | { kind: 'repair.started', extent: string, bytes: number, target: PeerIdString }
  /** The copy on `target` is made and listed in metadata. */
  | { kind: 'repair.finished', extent: string, bytes: number, target: PeerIdString }
  /** The copy on `target` could not be made or recorded; a later pass tries again. */
  | { kind: 'repair.failed', extent: string, bytes: number, target: PeerIdString, error: string, message?: string }
  /** A recorded move (rebalance or drain) is being executed: copy to `to`, switch, delete on `from`. */
  | { kind: 'move.started', extent: string, bytes: number, from: PeerIdString, to: PeerIdString }
  | { kind: 'move.finished', extent: string, bytes: number, from: PeerIdString, to: PeerIdString }
  /** One attempt failed; the move stays recorded and is tried again (until its attempts run out: cancelled). */
  | { kind: 'move.failed', extent: string, bytes: number, from: PeerIdString, to: PeerIdString, error: string, message?: string }
  /** The move was dropped: its target is no longer fit, or it failed too often. */
  | { kind: 'move.cancelled', extent: string, bytes: number, from: PeerIdString, to: PeerIdString, reason: string }
  /** The scrub found this node's copy of `extent` corrupt or missing; `repaired`: fetched again from another replica. */
  | { kind: 'scrub.error', extent: string, error: string, repaired: boolean }

/** What an event says, without its place in the log. */
export type ClusterEventBody =
  /** The failure detector moved `node` (Healthy → Suspected → Failed, or back to healthy on a heartbeat). */
  | { kind: 'node.health', node: PeerIdString, from: EventHealth, to: EventHealth }
  /** `node` appeared in the member list this node applied. */
  | { kind: 'node.joined', node: PeerIdString }
  /** `node` left the member list this node applied (dfs cluster nodes remove). */
  | { kind: 'node.removed', node: PeerIdString }
  /** The leader of metadata group `group` changed as this node sees it (null: it knows none now). */
  | { kind: 'raft.leader', group: number, leader: PeerIdString | null, term: number }
  | ReplicationEvent

/** Every kind of event. */
export type ClusterEventKind = ClusterEventBody['kind']

/** One event as a node keeps and serves it. */
export type ClusterEvent = ClusterEventBody & {
  /** Position in this node's log: 1, 2, 3 … from the node's start, without gaps. */
  seq: number
  /** When the node recorded it, ISO 8601 UTC. */
  at: string
}

/** Events a node keeps (the oldest are dropped first). */
export const EVENTS_KEPT = 1000
/** Longest a `cluster.events` call waits for a new event. */
export const EVENTS_WAIT_MS_MAX = 25_000
/** Most events one `cluster.events` answer holds. */
export const EVENTS_LIMIT_MAX = 500
/** Events one answer holds when the caller does not say. */
export const EVENTS_LIMIT_DEFAULT = 100
/** Most `cluster.events` calls one node lets wait at once (beyond: Unavailable). */
export const EVENTS_WAITERS_MAX = 64
/** Longest text an event carries in a free-form field (an error's message); longer is cut. */
export const EVENT_TEXT_CHARS_MAX = 200

/** `cluster.events` params. */
export interface ClusterEventsParams {
  /**
   * Answer events after this seq (the `next` of the previous answer), oldest first. Absent: the
   * newest `limit` events, at once. A seq past the node's newest (the node restarted since) reads
   * as 0: everything it holds is new to the caller.
   */
  after?: number
  /** With `after`: when nothing newer is held, wait up to this long for it (0..EVENTS_WAIT_MS_MAX, default 0). */
  waitMs?: number
  /** 1..EVENTS_LIMIT_MAX, default EVENTS_LIMIT_DEFAULT. */
  limit?: number
}

/** `cluster.events` result. */
export interface ClusterEventsResult {
  /** Oldest first. */
  events: ClusterEvent[]
  /** The `after` of the next call: the seq of the last event answered (or of the newest held, or `after`, when none). */
  next: number
  /** Events after `after` that the node no longer holds (the log kept only the last EVENTS_KEPT). */
  dropped?: number
}
