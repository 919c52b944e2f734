import { PROTOCOL_PREFIX } from '../net/constants.js'

/** Interval between two heartbeats of a node. */
export const HEARTBEAT_MS_DEFAULT = 5_000

/** A member not heard from for this long is Failed (repair may start). */
export const FAILURE_TIMEOUT_MS_DEFAULT = 15_000

/** A member not heard from for `heartbeatMs * SUSPECT_HEARTBEATS` is Suspected (unless configured). */
export const SUSPECT_HEARTBEATS = 2

/** Smallest heartbeat interval accepted (below it a cluster floods itself). */
export const HEARTBEAT_MS_MIN = 10

/** Largest heartbeat interval or timeout accepted: one day. */
export const TIMEOUT_MS_MAX = 24 * 3600 * 1000

/** Gossipsub topic of a cluster's heartbeats: `/dfs/heartbeat/1.0.0/<clusterId>`. */
export function heartbeatTopic (clusterId: string): string {
  return `/${PROTOCOL_PREFIX}/heartbeat/1.0.0/${clusterId}`
}

/** Cluster ids that may name a topic. */
export const CLUSTER_ID_PATTERN = /^[A-Za-z0-9._-]{1,128}$/

/** Largest encoded heartbeat accepted. A real one is a few hundred bytes. */
export const HEARTBEAT_BYTES_MAX = 4096

/** Most listen addresses a heartbeat may carry. */
export const HEARTBEAT_ADDRS_MAX = 16

/** Longest multiaddr string in a heartbeat. */
export const HEARTBEAT_ADDR_CHARS_MAX = 256

/** Longest node name or region. */
export const HEARTBEAT_NAME_CHARS_MAX = 64

/** Longest PeerId string (Ed25519 ones are 52 characters; RSA ones are longer). */
export const PEER_ID_CHARS_MAX = 128

/** Default deadline of a DHT lookup of a member's addresses. */
export const FIND_PEER_TIMEOUT_MS_DEFAULT = 10_000

/** Default deadline of one dial of a bootstrap peer. */
export const BOOTSTRAP_DIAL_TIMEOUT_MS_DEFAULT = 5_000

/** First delay before the bootstrap dialler retries a peer it could not reach; doubles up to the max. */
export const BOOTSTRAP_RETRY_MS_DEFAULT = 1_000

/** Longest delay between two attempts to reach a bootstrap peer. */
export const BOOTSTRAP_RETRY_MS_MAX = 30_000

/** Most bootstrap addresses accepted (`--peers`). */
export const BOOTSTRAP_PEERS_MAX = 64

/** A member's addresses are asked of the DHT at most once per this interval (per member). */
export const LOCATE_INTERVAL_MS_DEFAULT = 5_000

/** Deadline of one DHT lookup made because a member could not be dialled. */
export const LOCATE_TIMEOUT_MS_DEFAULT = 4_000

/** Members whose last lookup time is remembered; the oldest is forgotten beyond this. */
export const LOCATE_PEERS_MAX = 1024
