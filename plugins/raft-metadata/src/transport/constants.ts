/** Protocol id and limits of the Raft transport. Every queue, frame and field has a bound. */

export const RAFT_PROTOCOL_PREFIX = 'dfs'
export const RAFT_PROTOCOL_NAME = 'raft'
export const RAFT_PROTOCOL_VERSION = '1.0.0'
/** `/dfs/raft/1.0.0`. */
export const RAFT_PROTOCOL = `/${RAFT_PROTOCOL_PREFIX}/${RAFT_PROTOCOL_NAME}/${RAFT_PROTOCOL_VERSION}`

/**
 * Largest snapshot payload (`Snapshot.data`) the transport carries, in one frame. A larger snapshot is
 * not sent: the leader is told `reportSnapshot(peer, false)` and the error is logged. (Chunked snapshot
 * streaming is future work; the metadata of one group stays far below this today.)
 */
export const SNAPSHOT_DATA_BYTES_MAX = 16 * 1024 * 1024
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
