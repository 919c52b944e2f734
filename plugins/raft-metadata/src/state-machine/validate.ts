/**
 * Validation of untrusted operation fields. Every function either returns a fresh, frozen copy that
 * holds only the known fields, or throws InvalidArgument naming the field. Nothing here reads state.
 */
import { EXTENT_ID_PATTERN, EXTENT_SIZE_MAX, INLINE_FILE_BYTES_MAX, InvalidArgumentError, normalizePath } from '@dfs/api'
import type { ExtentRecord, JoinTokenRecord, MemberRecord, PeerIdString, Role } from '@dfs/api'
import {
  ADDR_LENGTH_MAX, CHECKSUM_LENGTH_MAX, CHECKSUM_PATTERN, MEMBER_ADDRS_MAX, MEMBER_NAME_LENGTH_MAX,
  PEER_ID_LENGTH_MAX, PEER_ID_PATTERN, REGION_LENGTH_MAX, REPLICAS_MAX
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
  return Object.freeze({ id, secretHash, createdAtMs, expiresAtMs, createdBy })
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
