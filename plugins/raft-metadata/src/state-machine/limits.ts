/**
 * Limits on what one metadata operation may carry. They are part of the state machine's semantics
 * (every replica must agree on them), so changing one is a protocol change.
 */

/** Longest PeerId string accepted (base58btc Ed25519 ids are 52 characters). */
export const PEER_ID_LENGTH_MAX = 128
/** Longest cluster id. */
export const CLUSTER_ID_LENGTH_MAX = 128
/** Longest member name. */
export const MEMBER_NAME_LENGTH_MAX = 255
/** Longest region name. */
export const REGION_LENGTH_MAX = 64
/** Most addresses a member may advertise. */
export const MEMBER_ADDRS_MAX = 32
/** Longest advertised address. */
export const ADDR_LENGTH_MAX = 1024
/** Longest checksum string (`algorithm:hex`). */
export const CHECKSUM_LENGTH_MAX = 256
/** Most replicas one extent may have. */
export const REPLICAS_MAX = 16
/** Most extents one file may have (with 4 MiB extents: 256 GiB). */
export const FILE_EXTENTS_MAX = 65536

/** `algorithm:hex`, e.g. `sha256:9f86…`. */
export const CHECKSUM_PATTERN = /^[a-z0-9-]{1,16}:[0-9a-f]{2,}$/
/** A PeerId string: printable ASCII without spaces (base58btc in production, short names in tests). */
export const PEER_ID_PATTERN = /^[\x21-\x7e]+$/
