/** Protocol id and limits of the Raft transport. Every queue, frame and field has a bound. */

export const RAFT_PROTOCOL_PREFIX = 'dfs'
export const RAFT_PROTOCOL_NAME = 'raft'
export const RAFT_PROTOCOL_VERSION = '1.0.0'
/** `/dfs/raft/1.0.0`. */
export const RAFT_PROTOCOL = `/${RAFT_PROTOCOL_PREFIX}/${RAFT_PROTOCOL_NAME}/${RAFT_PROTOCOL_VERSION}`

/**
 * `/dfs/raft-snapshot/1.0.0`: the streams that carry a snapshot too large for one frame, in chunks
 * (see snapshot-chunk.ts). A separate protocol, so that (1) a node of an older version, which does not
 * handle it, refuses the stream at protocol negotiation and the leader reports the snapshot failed,
 * exactly as it did with a snapshot over SNAPSHOT_DATA_BYTES_MAX; it never sees a frame it cannot
 * decode; and (2) megabytes of snapshot never queue ahead of the heartbeats on the Raft stream.
 */
export const RAFT_SNAPSHOT_PROTOCOL_NAME = 'raft-snapshot'
export const RAFT_SNAPSHOT_PROTOCOL_VERSION = '1.0.0'
export const RAFT_SNAPSHOT_PROTOCOL = `/${RAFT_PROTOCOL_PREFIX}/${RAFT_SNAPSHOT_PROTOCOL_NAME}/${RAFT_SNAPSHOT_PROTOCOL_VERSION}`

/**
 * Largest snapshot payload (`Snapshot.data`) that goes in one frame of the Raft stream, inside its Snap
 * message (every version of the protocol accepts such a frame). A larger snapshot is sent in chunks on
 * a RAFT_SNAPSHOT_PROTOCOL stream.
 */
export const SNAPSHOT_DATA_BYTES_MAX = 16 * 1024 * 1024
/**
 * Largest snapshot payload sent or reassembled at all. A larger one is not sent: the leader is told
 * `reportSnapshot(peer, false)` and a FrameTooLarge error is logged.
 */
export const SNAPSHOT_BYTES_MAX = 1024 * 1024 * 1024
/** Default payload bytes per chunk of a chunked snapshot. */
export const SNAPSHOT_CHUNK_BYTES_DEFAULT = 4 * 1024 * 1024
/** Largest chunk payload a receiver accepts (room for a sender configured with larger chunks). */
export const SNAPSHOT_CHUNK_BYTES_MAX = 8 * 1024 * 1024
/**
 * Default most bytes (the declared totals) of the snapshots in reassembly at once, over every peer and
 * group; a first chunk that would exceed it is refused (the leader re-sends later).
 */
export const SNAPSHOT_REASSEMBLY_BYTES_MAX_DEFAULT = 2 * SNAPSHOT_BYTES_MAX
/** Most snapshots in reassembly at once (at most one per group and sender in any case). */
export const SNAPSHOT_REASSEMBLIES_MAX = 64
/** Default time without a chunk after which an unfinished reassembly is dropped. */
export const SNAPSHOT_STALL_MS_DEFAULT = 30_000
/** Most chunked snapshots waiting to be sent to one peer (at most one per group: a newer replaces it). */
export const PEER_SNAPSHOTS_QUEUED_MAX = 16
/** Inbound snapshot streams one connection may have open at once. */
export const INBOUND_SNAPSHOT_STREAMS_MAX = 2
/** Room in a frame beyond the snapshot payload: the rest of the message, the frame header. */
export const FRAME_SLACK_BYTES = 256 * 1024
/** Largest frame (the length prefix's value) sent or accepted. */
export const FRAME_BYTES_MAX = SNAPSHOT_DATA_BYTES_MAX + FRAME_SLACK_BYTES
/** Most messages in one frame. */
export const FRAME_MESSAGES_MAX = 4096
/** Most entries in one message (the core's 1 MiB maxSizePerMsg with 24 bytes per entry gives < 44k). */
export const MESSAGE_ENTRIES_MAX = 65_536
/** Longest node id (the Raft core's limit: one name for one limit). */
export { NODE_ID_LENGTH_MAX } from '../raft/constants.js'
/** Most voters or learners in a snapshot's membership. */
export const MEMBERS_MAX = 1024
/** Largest `Message.context` (ReadIndex contexts are 16 bytes; a transfer campaign's is a short tag). */
export const CONTEXT_BYTES_MAX = 64 * 1024
/** Largest group id (groups are numbered from 0, the system group). */
export const GROUP_ID_MAX = 0xffff_ffff

/** Default most messages waiting to be sent to one peer; beyond it messages are dropped. */
export const PEER_QUEUE_MESSAGES_MAX_DEFAULT = 4096
/** Default most encoded bytes waiting to be sent to one peer (a snapshot counts too). */
export const PEER_QUEUE_BYTES_MAX_DEFAULT = 64 * 1024 * 1024
/** Default deadline to open a stream to a peer (dial included). */
export const DIAL_TIMEOUT_MS_DEFAULT = 5_000
/** Default deadline of one frame write (a peer that stops reading gets its stream reset). */
export const WRITE_TIMEOUT_MS_DEFAULT = 10_000
/** Reconnect back-off after a failed dial or write: doubles from min to max, reset by a good write. */
export const BACKOFF_MS_MIN_DEFAULT = 50
export const BACKOFF_MS_MAX_DEFAULT = 2_000
/** Inbound Raft streams one connection may have open at once (one is normal; a reconnect overlaps). */
export const INBOUND_STREAMS_MAX = 4
