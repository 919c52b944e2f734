/** Defaults of the replicated metadata service. */

/** The sub-directory of the service's dir that holds the Raft log (LevelDB). */
export const RAFT_DIR = 'raft'
/** The group number of the system group on the Raft transport. */
export const SYSTEM_GROUP = 0
/** Largest encoded operation (it travels in one App message; the transport frame limit is 16 MiB). */
export const OP_BYTES_MAX_DEFAULT = 4 * 1024 * 1024

/** How often the leader looks for a learner to promote. */
export const PROMOTE_EVERY_MS_DEFAULT = 500
