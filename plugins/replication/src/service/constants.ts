/**
 * Defaults and limits of the replication service, grouped by the module that uses them. The
 * `*_DEFAULT` values are the defaults of the ReplicationTuning fields of the same name.
 */

// repair (repair.ts)

export const REPAIR_EVERY_MS_DEFAULT = 5_000
export const REPAIRS_IN_FLIGHT_MAX_DEFAULT = 4
/** Repair copies at most this many bytes per second (cluster-wide: one coordinator). */
export const REPAIR_BYTES_PER_SECOND_DEFAULT = 64 * 1024 * 1024
/** An early repair pass for a node whose repair delay runs out runs this much after it (clock granularity, failure detector updates). */
export const REPAIR_EXPIRY_SLACK_MS = 50
/** How often the coordinator looks at its members' health for a repair delay running out (cheap: no extents). */
export const FAILED_WATCH_MS = 500
/** Deadline of one repair copy (a 4 MiB extent pulled from a live replica); a move's copy has the same. */
export const REPAIR_COPY_TIMEOUT_MS = 60_000

// write path (write-path.ts)

/**
 * A write on the coordinator that recorded a copy missing asks for a repair pass this much later (at
 * most once per repair period: under an overload that cuts copies off, a pass over every extent
 * each second would add to the load).
 */
export const MISSING_COPY_REPAIR_AFTER_MS = 1_000
/**
 * A write that has its quorum gives the other copies at least this long to acknowledge too, so that
 * a replica that is merely slower (a loaded node, a busy disk) still gets its copy recorded and only
 * one that is hung or failing is left to repair…
 */
export const QUORUM_GRACE_MS_MIN = 1_000
/** …or four times as long as the quorum took, if longer… */
export const QUORUM_GRACE_FACTOR = 4
/** …but never more than this. */
export const QUORUM_GRACE_MS_MAX = 10_000

// scrub (scrub.ts)

export const SCRUB_EVERY_MS_DEFAULT = 60_000
export const SCRUB_BYTES_PER_SECOND_DEFAULT = 16 * 1024 * 1024

// release (release.ts)

/** Pause before remote copies of a dropped extent are deleted (readers elsewhere finish first). */
export const RELEASE_GRACE_MS_DEFAULT = 10_000
/**
 * A delete of a released copy that failed (its node unreachable or overloaded, the call's deadline)
 * is tried again after this long, four times as long after each further failure…
 */
export const RELEASE_RETRY_MS_FIRST = 1_000
/** …up to this many tries in all (1 + 4 + 16 + 64 s of waits); then only the node's orphan sweep frees the copy. */
export const RELEASE_DELETE_TRIES_MAX = 5
/** Copies waiting to be tried again, over all peers; more are left to the orphan sweep (bounded memory). */
export const RELEASE_RETRIES_MAX = 100_000

// move executor (moves.ts)

/** How often the coordinator looks for recorded moves (and right after a node records some). */
export const MOVE_EVERY_MS_DEFAULT = 1_000
export const MOVES_IN_FLIGHT_MAX_DEFAULT = 2
/** Moves copy at most this many bytes per second, leaving room for client traffic and repair. */
export const MOVE_BYTES_PER_SECOND_DEFAULT = 32 * 1024 * 1024
/** A move that failed this many times on one coordinator is cancelled (a later plan may retry it). */
export const MOVE_ATTEMPTS_MAX = 5

// rebalance and drain planning (rebalance.ts)

/** Intents recorded at once while recording a plan. */
export const RECORD_CONCURRENCY = 8
/** How often a waiting rebalance or drain looks at metadata again. */
export const WAIT_POLL_MS = 250
/** A waiting drain plans moves again for copies whose move was cancelled, at most this often. */
export const DRAIN_REPLAN_MS = 2_000
