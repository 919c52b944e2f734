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

/** Most users (grants) the cluster keeps. */
export const USERS_MAX = 100_000
/** Most tenants one state machine (one data group) keeps. */
export const TENANTS_MAX = 100_000
/** Most live join tokens (expired ones are pruned when a token is created). */
export const JOIN_TOKENS_MAX = 10_000
/** Most uses one join token may grant. */
export const JOIN_TOKEN_USES_MAX = 1000
/** Highest request rate (per second) a tenant or the cluster setting may name. */
export const REQUEST_RATE_MAX = 1_000_000
/** Length of the base64url (unpadded) form of a raw 32-byte Ed25519 public key. */
export const CLUSTER_PUBLIC_KEY_LENGTH = 43
/** Longest base64url private key (a PKCS#8 DER Ed25519 key is 64 characters; room for other encodings). */
export const CLUSTER_PRIVATE_KEY_LENGTH_MAX = 1024
/** A base64url string without padding. */
export const BASE64URL_PATTERN = /^[A-Za-z0-9_-]+$/
/** A typed error's name, as an audit entry records it. */
export const ERROR_NAME_PATTERN = /^[A-Za-z][A-Za-z0-9]{0,63}$/
