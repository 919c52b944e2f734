/**
 * Validation of untrusted operation fields. Every function either returns a fresh, frozen copy that
 * holds only the known fields, or throws InvalidArgument naming the field. Nothing here reads state.
 */
import {
  AUDIT_FIELD_LENGTH_MAX, EXTENT_ID_PATTERN, EXTENT_SIZE_MAX, INLINE_FILE_BYTES_MAX, InvalidArgumentError, S3_ACCESS_KEY_ID_PATTERN,
  S3_SECRET_KEY_PATTERN, normalizePath, requireTenantName
} from '@dfs/api'
import type {
  AuditEntry, AuditRecord, ClusterKey, ExtentRecord, JoinTokenRecord, MemberRecord, PeerIdString, Role, S3KeyRecord, TenantRecord
} from '@dfs/api'
import {
  ADDR_LENGTH_MAX, BASE64URL_PATTERN, CHECKSUM_LENGTH_MAX, CHECKSUM_PATTERN, CLUSTER_PRIVATE_KEY_LENGTH_MAX, CLUSTER_PUBLIC_KEY_LENGTH,
  ERROR_NAME_PATTERN, JOIN_TOKEN_USES_MAX, MEMBER_ADDRS_MAX, MEMBER_NAME_LENGTH_MAX, PEER_ID_LENGTH_MAX, PEER_ID_PATTERN, REGION_LENGTH_MAX,
  REPLICAS_MAX, REQUEST_RATE_MAX
} from './limits.js'

export type Fields = Record<string, unknown>

export function isRecord (value: unknown): value is Fields {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Uint8Array)
}

/** An own property only: an inherited one is treated as missing. */
export function field (obj: Fields, name: string): unknown {
  return Object.hasOwn(obj, name) ? obj[name] : undefined
}

export function requireRecord (value: unknown, what: string): Fields {
  if (!isRecord(value)) {
    throw new InvalidArgumentError(`${what} must be an object`, { field: what })
  }
  return value
}

export function requireString (value: unknown, what: string, lengthMin: number, lengthMax: number): string {
  if (typeof value !== 'string') {
    throw new InvalidArgumentError(`${what} must be a string`, { field: what })
  }
  if (value.length < lengthMin || value.length > lengthMax) {
    throw new InvalidArgumentError(`${what} must be ${lengthMin} to ${lengthMax} characters long`,
      { field: what, length: value.length })
  }
  return value
}

/** A safe integer in [min, max]. */
export function requireInteger (value: unknown, what: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value)) {
    throw new InvalidArgumentError(`${what} must be an integer`, { field: what })
  }
  if (value < min || value > max) {
    throw new InvalidArgumentError(`${what} must be between ${min} and ${max}`, { field: what, value })
  }
  // -0 and 0 encode differently in CBOR floats; keep one canonical zero.
  return value === 0 ? 0 : value
}

export function requireArray (value: unknown, what: string, lengthMin: number, lengthMax: number): unknown[] {
  if (!Array.isArray(value)) {
    throw new InvalidArgumentError(`${what} must be an array`, { field: what })
  }
  if (value.length < lengthMin || value.length > lengthMax) {
    throw new InvalidArgumentError(`${what} must have ${lengthMin} to ${lengthMax} elements`,
      { field: what, length: value.length })
  }
  return value
}

export function requirePeerId (value: unknown, what: string): PeerIdString {
  const id = requireString(value, what, 1, PEER_ID_LENGTH_MAX)
  if (!PEER_ID_PATTERN.test(id)) {
    throw new InvalidArgumentError(`${what} is not a valid peer id`, { field: what, value: id })
  }
  return id
}

export function requireExtentId (value: unknown, what: string): string {
  if (typeof value !== 'string' || !EXTENT_ID_PATTERN.test(value)) {
    throw new InvalidArgumentError(`${what} must be a lower-case UUID`, { field: what, value: typeof value === 'string' ? value.slice(0, 64) : typeof value })
  }
  return value
}

export function requireRole (value: unknown, what: string): Role {
  if (value !== 'admin' && value !== 'user' && value !== 'readonly') {
    throw new InvalidArgumentError(`${what} must be admin, user or readonly`, { field: what, value: typeof value === 'string' ? value.slice(0, 64) : typeof value })
  }
  return value
}

/** The public id of a join token: 16 lower-case hex digits. */
export const TOKEN_ID_PATTERN = /^[0-9a-f]{16}$/

export function requireTokenId (value: unknown, what: string): string {
  if (typeof value !== 'string' || !TOKEN_ID_PATTERN.test(value)) {
    throw new InvalidArgumentError(`${what} must be 16 lower-case hex digits`, { field: what })
  }
  return value
}

export function requireJoinToken (value: unknown, what: string): JoinTokenRecord {
  const t = requireRecord(value, what)
  const id = requireTokenId(field(t, 'id'), `${what}.id`)
  const secretHash = field(t, 'secretHash')
  if (typeof secretHash !== 'string' || !/^sha256:[0-9a-f]{64}$/.test(secretHash)) {
    throw new InvalidArgumentError(`${what}.secretHash must be sha256:<64 hex digits>`, { field: `${what}.secretHash` })
  }
  const createdAtMs = requireInteger(field(t, 'createdAtMs'), `${what}.createdAtMs`, 0, Number.MAX_SAFE_INTEGER)
  const expiresAtMs = requireInteger(field(t, 'expiresAtMs'), `${what}.expiresAtMs`, 0, Number.MAX_SAFE_INTEGER)
  if (expiresAtMs <= createdAtMs) {
    throw new InvalidArgumentError(`${what} expires before it is created`, { field: `${what}.expiresAtMs` })
  }
  const createdBy = requirePeerId(field(t, 'createdBy'), `${what}.createdBy`)
  // absent usesLeft: a token of a version before use counting, good for any number of joins
  const rawUses = field(t, 'usesLeft')
  const usesLeft = rawUses === undefined ? undefined : requireInteger(rawUses, `${what}.usesLeft`, 1, JOIN_TOKEN_USES_MAX)
  const rawFor = field(t, 'forPeer')
  const forPeer = rawFor === undefined ? undefined : requirePeerId(rawFor, `${what}.forPeer`)
  return Object.freeze({
    id, secretHash, createdAtMs, expiresAtMs, createdBy,
    ...(usesLeft !== undefined ? { usesLeft } : {}),
    ...(forPeer !== undefined ? { forPeer } : {})
  })
}

/** A tenant name (InvalidArgument naming the field). */
export function requireTenantField (value: unknown, what: string): string {
  try {
    return requireTenantName(value)
  } catch (err) {
    if (err instanceof InvalidArgumentError) throw new InvalidArgumentError(`${what}: ${err.message}`, { ...err.details, field: what })
    throw err
  }
}

function requireNullableInteger (value: unknown, what: string, min: number, max: number): number | null {
  return value === null ? null : requireInteger(value, what, min, max)
}

/** A tenant record: quotas null or safe integers >= 0, request rate null or 1..REQUEST_RATE_MAX. */
export function requireTenant (value: unknown, what: string): TenantRecord {
  const obj = requireRecord(value, what)
  return Object.freeze({
    name: requireTenantField(field(obj, 'name'), `${what}.name`),
    quotaBytes: requireNullableInteger(field(obj, 'quotaBytes'), `${what}.quotaBytes`, 0, Number.MAX_SAFE_INTEGER),
    quotaFiles: requireNullableInteger(field(obj, 'quotaFiles'), `${what}.quotaFiles`, 0, Number.MAX_SAFE_INTEGER),
    requestRate: requireNullableInteger(field(obj, 'requestRate'), `${what}.requestRate`, 1, REQUEST_RATE_MAX)
  })
}

/** The cluster key pair: base64url strings, the public half exactly a raw 32-byte key. */
export function requireClusterKey (value: unknown, what: string): ClusterKey {
  const obj = requireRecord(value, what)
  const publicKey = requireString(field(obj, 'publicKey'), `${what}.publicKey`, CLUSTER_PUBLIC_KEY_LENGTH, CLUSTER_PUBLIC_KEY_LENGTH)
  const privateKey = requireString(field(obj, 'privateKey'), `${what}.privateKey`, 1, CLUSTER_PRIVATE_KEY_LENGTH_MAX)
  for (const [name, s] of [['publicKey', publicKey], ['privateKey', privateKey]]) {
    if (!BASE64URL_PATTERN.test(s)) throw new InvalidArgumentError(`${what}.${name} must be base64url`, { field: `${what}.${name}` })
  }
  return Object.freeze({ publicKey, privateKey })
}

/**
 * An audit record: strings within AUDIT_FIELD_LENGTH_MAX, a count >= 1, and `error` an error name
 * exactly when `success` is false.
 */
export function requireAuditRecord (value: unknown, what: string): AuditRecord {
  const obj = requireRecord(value, what)
  const timeMs = requireInteger(field(obj, 'timeMs'), `${what}.timeMs`, 0, Number.MAX_SAFE_INTEGER)
  const user = requirePeerId(field(obj, 'user'), `${what}.user`)
  const rawRole = field(obj, 'role')
  const role = rawRole === null || rawRole === 'node' ? rawRole : requireRole(rawRole, `${what}.role`)
  const rawTenant = field(obj, 'tenant')
  const tenant = rawTenant === null ? null : requireTenantField(rawTenant, `${what}.tenant`)
  const operation = requireString(field(obj, 'operation'), `${what}.operation`, 1, AUDIT_FIELD_LENGTH_MAX)
  const resource = requireString(field(obj, 'resource'), `${what}.resource`, 0, AUDIT_FIELD_LENGTH_MAX)
  const success = field(obj, 'success')
  if (typeof success !== 'boolean') throw new InvalidArgumentError(`${what}.success must be true or false`, { field: `${what}.success` })
  const error = field(obj, 'error')
  if (success ? error !== null : typeof error !== 'string' || !ERROR_NAME_PATTERN.test(error)) {
    throw new InvalidArgumentError(`${what}.error must be null on success and an error name otherwise`, { field: `${what}.error` })
  }
  const count = requireInteger(field(obj, 'count'), `${what}.count`, 1, Number.MAX_SAFE_INTEGER)
  const node = requirePeerId(field(obj, 'node'), `${what}.node`)
  return Object.freeze({ timeMs, user, role, tenant, operation, resource, success, error: error as string | null, count, node })
}

/** A stored audit entry (from a snapshot): a record with its seq and hash, taken as stored, never recomputed. */
export function requireAuditEntry (value: unknown, what: string): AuditEntry {
  const record = requireAuditRecord(value, what)
  const obj = requireRecord(value, what)
  const seq = requireInteger(field(obj, 'seq'), `${what}.seq`, 1, Number.MAX_SAFE_INTEGER)
  const hash = requireAuditHash(field(obj, 'hash'), `${what}.hash`)
  return Object.freeze({ ...record, seq, hash })
}

/** 64 lower-case hex digits. */
export function requireAuditHash (value: unknown, what: string): string {
  if (typeof value !== 'string' || !/^[0-9a-f]{64}$/.test(value)) {
    throw new InvalidArgumentError(`${what} must be 64 lower-case hex digits`, { field: what })
  }
  return value
}

export function requirePath (value: unknown, what: string): string {
  try {
    return normalizePath(value)
  } catch (err) {
    if (err instanceof InvalidArgumentError) {
      throw new InvalidArgumentError(`${what}: ${err.message}`, { field: what })
    }
    throw err
  }
}

/** A non-empty replica set without duplicates. */
export function requireReplicas (value: unknown, what: string): PeerIdString[] {
  const list = requireArray(value, what, 1, REPLICAS_MAX)
  const seen = new Set<string>()
  const out: PeerIdString[] = []
  for (let i = 0; i < list.length; i++) {
    const id = requirePeerId(list[i], `${what}[${i}]`)
    if (seen.has(id)) {
      throw new InvalidArgumentError(`${what} lists ${id} twice`, { field: what, replica: id })
    }
    seen.add(id)
    out.push(id)
  }
  return Object.freeze(out) as PeerIdString[]
}

export function requireExtent (value: unknown, what: string): ExtentRecord {
  const obj = requireRecord(value, what)
  const id = requireExtentId(field(obj, 'id'), `${what}.id`)
  const size = requireInteger(field(obj, 'size'), `${what}.size`, 0, EXTENT_SIZE_MAX)
  const checksum = requireString(field(obj, 'checksum'), `${what}.checksum`, 1, CHECKSUM_LENGTH_MAX)
  if (!CHECKSUM_PATTERN.test(checksum)) {
    throw new InvalidArgumentError(`${what}.checksum must be algorithm:hex`, { field: `${what}.checksum`, value: checksum })
  }
  const replicas = requireReplicas(field(obj, 'replicas'), `${what}.replicas`)
  return Object.freeze({ id, size, checksum, replicas })
}

export function requireMember (value: unknown, what: string): MemberRecord {
  const obj = requireRecord(value, what)
  const id = requirePeerId(field(obj, 'id'), `${what}.id`)
  const name = requireString(field(obj, 'name'), `${what}.name`, 0, MEMBER_NAME_LENGTH_MAX)
  const region = requireString(field(obj, 'region'), `${what}.region`, 0, REGION_LENGTH_MAX)
  const list = requireArray(field(obj, 'addrs'), `${what}.addrs`, 0, MEMBER_ADDRS_MAX)
  const addrs = list.map((a, i) => requireString(a, `${what}.addrs[${i}]`, 1, ADDR_LENGTH_MAX))
  return Object.freeze({ id, name, region, addrs: Object.freeze(addrs) as string[] })
}

/**
 * PutFile's `inline` (absent: undefined): the bytes of every extent, each exactly its extent's size,
 * INLINE_FILE_BYTES_MAX in all.
 */
export function requireInline (value: unknown, extents: ExtentRecord[]): Uint8Array[] | undefined {
  if (value === undefined) return undefined
  const list = requireArray(value, 'inline', extents.length, extents.length)
  let total = 0
  list.forEach((bytes, i) => {
    if (!(bytes instanceof Uint8Array)) throw new InvalidArgumentError(`inline[${i}] must be bytes`, { field: `inline[${i}]` })
    if (bytes.byteLength !== extents[i].size) {
      throw new InvalidArgumentError(`inline[${i}] has ${bytes.byteLength} bytes, its extent ${extents[i].size}`,
        { field: `inline[${i}]`, size: bytes.byteLength, extentSize: extents[i].size })
    }
    total += bytes.byteLength
  })
  if (total > INLINE_FILE_BYTES_MAX) {
    throw new InvalidArgumentError(`inline bytes are ${total} in all, more than ${INLINE_FILE_BYTES_MAX}`,
      { field: 'inline', size: total, sizeMax: INLINE_FILE_BYTES_MAX })
  }
  return Object.freeze([...list]) as Uint8Array[]
}

/** An S3 access key id (S3_ACCESS_KEY_ID_PATTERN). */
export function requireAccessKeyId (value: unknown, what: string): string {
  if (typeof value !== 'string' || !S3_ACCESS_KEY_ID_PATTERN.test(value)) {
    throw new InvalidArgumentError(`${what} must be DFS and 17 upper-case letters or digits`, { field: what })
  }
  return value
}

/** An S3 access key record; the secret is never echoed in an error. */
export function requireS3Key (value: unknown, what: string): S3KeyRecord {
  const obj = requireRecord(value, what)
  const accessKeyId = requireAccessKeyId(field(obj, 'accessKeyId'), `${what}.accessKeyId`)
  const secretAccessKey = field(obj, 'secretAccessKey')
  if (typeof secretAccessKey !== 'string' || !S3_SECRET_KEY_PATTERN.test(secretAccessKey)) {
    throw new InvalidArgumentError(`${what}.secretAccessKey must be 40 characters of [A-Za-z0-9+/]`, { field: `${what}.secretAccessKey` })
  }
  const user = requirePeerId(field(obj, 'user'), `${what}.user`)
  const createdAtMs = requireInteger(field(obj, 'createdAtMs'), `${what}.createdAtMs`, 0, Number.MAX_SAFE_INTEGER)
  return Object.freeze({ accessKeyId, secretAccessKey, user, createdAtMs })
}
