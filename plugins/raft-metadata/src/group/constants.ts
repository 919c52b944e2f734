/** Defaults and limits of the Raft group driver. */

/** Milliseconds per Raft tick. */
export const TICK_MS_DEFAULT = 100
/**
 * Ticks without a leader before an election, randomized in (t, 2t]: 0.9–1.6 s with 100 ms ticks.
 * The first of the surviving followers to time out wins, so a dead leader is replaced after about
 * 1.1 s plus a pre-vote and a vote round; with 10 ticks (etcd's 1 s) the median failover of a
 * three-node cluster was ~1.3–1.5 s, at the edge of dfs's 1.5 s target. Eight heartbeats in a row
 * would still have to be missed before a healthy leader is challenged.
 */
export const ELECTION_TICK_DEFAULT = 8
/**
 * Ticks between leader heartbeats: 200 ms, so a follower sees at least four before its election
 * timeout (etcd: 100 ms against 1 s; CockroachDB and TiKV beat slower still). Every group's leader
 * heartbeats its followers, and each round is a message, a reply and a Ready on both sides: at one
 * tick, three idle nodes (four groups) each spent ~5 % of a core on little else, at two ~3.2–3.6 %
 * (scripts-only measurement over 10 s idle). A loaded cluster did not change measurably (`npm run
 * bench:cluster -- --seconds 8 --json`, alternated, two runs each: 931/1,031 and 1,014/902 puts/s at
 * 16 clients, 1,900/1,974 and 1,913/1,825 at 64), and failover got no slower (838/1,027 ms against
 * 1,089/1,059): a follower's timer runs from the last heartbeat it had, ReadIndex sends a round of
 * its own at once, and check-quorum counts every reply, four rounds or more per election timeout.
 */
export const HEARTBEAT_TICK_DEFAULT = 2
/** Snapshot the state machine and compact the log every this many applied entries. */
export const SNAPSHOT_EVERY_DEFAULT = 10_000
/**
 * Also snapshot once the entries applied since the last snapshot hold this many bytes: each member
 * keeps its log in memory until it compacts it, and PutFiles that carry small files' bytes make
 * entries of kilobytes (10,000 of 8 KiB would be 80 MiB per group).
 */
export const SNAPSHOT_BYTES_DEFAULT = 32 * 1024 * 1024
/**
 * Longest a group waits, after restoring a leader's snapshot, for its state machine to fetch what
 * the snapshot refers to (GroupStateMachine.restored) before it acknowledges the snapshot anyway.
 */
export const RESTORED_WAIT_MS_MAX = 30_000
/** After the state machine could not settle for a snapshot, the next attempt waits this long. */
export const SNAPSHOT_RETRY_MS = 1000
/** Entries kept before the snapshot index after a compaction, for followers that lag a little. */
export const SNAPSHOT_KEEP_ENTRIES_DEFAULT = 1_000
/** Deadline of a proposal or a read when the caller's signal does not end it sooner. */
export const CALL_TIMEOUT_MS_DEFAULT = 10_000
/** Most proposals and reads waiting at once; beyond it calls fail with Unavailable. */
export const PENDING_MAX_DEFAULT = 16_384
/** Most inbound messages waiting for the loop; beyond it messages are dropped (Raft tolerates loss). */
export const INBOX_MESSAGES_MAX_DEFAULT = 65_536
/** Largest proposal payload (the App message that carries it must fit a transport frame). */
export const PROPOSAL_BYTES_MAX_DEFAULT = 8 * 1024 * 1024
/** Ticks that may be owed to the core after a stall (more are dropped, as etcd's tick channel does). */
export const PENDING_TICKS_MAX = 4
