/** Defaults of the replicated metadata service. */

/**
 * The sub-directory of the service's dir that holds the Raft logs of every group of the node, in one
 * LevelDB (RaftLogDb), group `g` under the key prefix `groupPrefix(g)`.
 */
export const RAFT_LOG_DIR = 'raft-log'
export const groupPrefix = (g: number): string => `g${g}/`
/** Where earlier versions kept the system group's log (a LevelDB of its own); migrated at start. */
export const LEGACY_SYSTEM_LOG_DIR = 'raft'
/** …and data group `g`'s. */
export const legacyDataLogDir = (g: number): string => `raft-g${g}`
/** The file that records how many data groups this node's cluster has (written before their logs). */
export const LAYOUT_FILE = 'layout.json'
/** The group number of the system group on the Raft transport. */
export { SYSTEM_GROUP } from '../shards/index.js'
/**
 * Data groups of a new cluster. Three so that in the common three-node cluster every node leads one
 * data group (writes spread over all nodes' CPUs and disks); more would only add per-group ticks,
 * heartbeats and fsyncs on small clusters. Fixed at creation (moving shards between groups is not
 * built yet); see the README.
 */
export const DATA_GROUPS_DEFAULT = 3
/** Largest encoded operation (it travels in one App message; the transport frame limit is 16 MiB). */
export const OP_BYTES_MAX_DEFAULT = 4 * 1024 * 1024

/** How often the leader looks for a learner to promote and a data group leader for its preferred node. */
export const PROMOTE_EVERY_MS_DEFAULT = 500
/** First pause after a leadership transfer that did not happen; doubles up to the maximum. */
export const TRANSFER_BACKOFF_MS_MIN = 5_000
export const TRANSFER_BACKOFF_MS_MAX = 300_000
