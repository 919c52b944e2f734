/** Defaults and hard limits of the Raft core (every queue and batch has a bound). */

/** Default RaftConfig.maxSizePerMsg: 1 MiB of entries per App message. */
export const DEFAULT_MAX_SIZE_PER_MSG = 1024 * 1024
/** Default RaftConfig.maxInflightMsgs. */
export const DEFAULT_MAX_INFLIGHT_MSGS = 256
/** Default RaftConfig.maxInflightBytes (0 = only the count limit). */
export const DEFAULT_MAX_INFLIGHT_BYTES = 0
/** Default RaftConfig.maxUncommittedEntriesSize: 64 MiB of proposed but uncommitted payload. */
export const DEFAULT_MAX_UNCOMMITTED_SIZE = 64 * 1024 * 1024
/** Default RaftConfig.maxCommittedSizePerReady: 16 MiB of committed entries per Ready. */
export const DEFAULT_MAX_COMMITTED_SIZE_PER_READY = 16 * 1024 * 1024
/** Default RaftConfig.maxPendingReadIndex. */
export const DEFAULT_MAX_PENDING_READ_INDEX = 4096
/** Accounting overhead of one entry (index, term, type, framing) in message and Ready size limits. */
export const ENTRY_OVERHEAD_BYTES = 24
/** Largest number of messages one node queues between two Readys; beyond it the core asserts (a driver bug). */
export const MAX_QUEUED_MESSAGES = 1_000_000

/**
 * The `context` of a Vote sent by a leadership-transfer campaign (thesis §3.10): voters grant it
 * even inside the leader lease of thesis §4.2.3, because the current leader asked for it.
 */
export const CAMPAIGN_TRANSFER_CONTEXT = new TextEncoder().encode('dfs-raft:campaign-transfer')
/** Longest node id in a conf change or a message (a PeerId string is ~52 characters). */
export const NODE_ID_LENGTH_MAX = 256
/** Largest ConfChange.context accepted. */
export const CONF_CHANGE_CONTEXT_BYTES_MAX = 64 * 1024
