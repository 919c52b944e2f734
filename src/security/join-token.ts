import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import { open, type FileHandle } from 'node:fs/promises'
import { ConfigError, InvalidTokenError, TokenExpiredError, type JoinTokenRecord, type MetadataView, type PeerIdString } from '@dfs/api'
import { CLUSTER_PIN_LENGTH } from './cluster-key.js'

/**
 * Join tokens: `dfs-join.<id>.<secret>.<pin>`, where id is 16 hex digits (public, names the token in
 * metadata), secret is 32 random bytes in base64url, and pin names the cluster (clusterPin of its
 * public key: a joining node refuses a member that cannot prove that key, before it sends the
 * secret). Tokens of older versions have no pin and are still accepted (there is nothing to check
 * on the joining side). Metadata keeps only sha256(secret), so whoever can read metadata still
 * cannot join. A token admits `uses` nodes (one by default), optionally only the PeerId it is for,
 * until it expires or is revoked.
 */

const TOKEN_PATTERN = new RegExp(`^dfs-join\\.([0-9a-f]{16})\\.([A-Za-z0-9_-]{43})(?:\\.([A-Za-z0-9_-]{${CLUSTER_PIN_LENGTH}}))?$`)

/** Longest a token may live: a token is meant for the join at hand, as kubeadm's (24 h) are. */
export const JOIN_TOKEN_TTL_MS_MAX = 24 * 3600 * 1000
/** Shortest: enough for a node to start and ask, and for a test of expiry. */
export const JOIN_TOKEN_TTL_MS_MIN = 1000
export const JOIN_TOKEN_TTL_MS_DEFAULT = 3600 * 1000
/** Most nodes one token admits (a cluster has at most a handful of members). */
export const JOIN_TOKEN_USES_MAX = 100
export const JOIN_TOKEN_USES_DEFAULT = 1
/** Longest string a `cluster.join` may present as a token (a valid one is 84 characters). */
export const JOIN_TOKEN_LENGTH_MAX = 128

/** The parts of a well-formed token. */
export interface ParsedJoinToken {
  id: string
  secret: string
  /** Absent in tokens of older versions. */
  pin?: string
}

export interface MintOptions {
  ttlMs: number
  uses: number
  /** Only this PeerId may join with the token. */
  forPeer?: PeerIdString
  /** The cluster's pin (clusterPin of its public key); absent while the cluster has no key. */
  pin?: string
}

export function mintJoinToken (createdBy: string, options: MintOptions, nowMs: number): { token: string, record: JoinTokenRecord } {
  const { ttlMs, uses } = options
  if (!Number.isSafeInteger(ttlMs) || ttlMs < JOIN_TOKEN_TTL_MS_MIN || ttlMs > JOIN_TOKEN_TTL_MS_MAX) {
    throw new RangeError(`join token ttl ${ttlMs} ms out of range`)
  }
  if (!Number.isSafeInteger(uses) || uses < 1 || uses > JOIN_TOKEN_USES_MAX) throw new RangeError(`join token uses ${uses} out of range`)
  if (options.pin !== undefined && !new RegExp(`^[A-Za-z0-9_-]{${CLUSTER_PIN_LENGTH}}$`).test(options.pin)) throw new RangeError('malformed cluster pin')
  const id = randomBytes(8).toString('hex')
  const secret = randomBytes(32).toString('base64url')
  const record: JoinTokenRecord = { id, secretHash: hashSecret(secret), createdAtMs: nowMs, expiresAtMs: nowMs + ttlMs, createdBy, usesLeft: uses }
  if (options.forPeer !== undefined) record.forPeer = options.forPeer
  return { token: `dfs-join.${id}.${secret}${options.pin !== undefined ? `.${options.pin}` : ''}`, record }
}

/** Checks a token's form only (no metadata read): InvalidToken when it is not one. */
export function parseJoinToken (presented: unknown): ParsedJoinToken {
  const m = typeof presented === 'string' && presented.length <= JOIN_TOKEN_LENGTH_MAX ? TOKEN_PATTERN.exec(presented) : null
  if (m == null) throw new InvalidTokenError('the join token is malformed (expected dfs-join.<id>.<secret>.<pin>)')
  const [, id, secret, pin] = m
  return pin === undefined ? { id, secret } : { id, secret, pin }
}

/**
 * Checks a presented token against metadata at time `nowMs` for the joining `peer`; returns its
 * record or throws InvalidToken (unknown, wrong secret, used up, for another peer) or TokenExpired.
 * Spending a use is the state machine's (UseJoinToken), which checks the same again atomically.
 */
export function verifyJoinToken (view: MetadataView, presented: ParsedJoinToken | string, nowMs: number, peer?: PeerIdString): JoinTokenRecord {
  const { id, secret } = typeof presented === 'string' ? parseJoinToken(presented) : presented
  const record = view.joinToken(id)
  const expected = Buffer.from(record?.secretHash ?? 'sha256:' + '0'.repeat(64))
  const actual = Buffer.from(hashSecret(secret))
  // compare in constant time even when the id is unknown, so timing tells nothing about ids
  const matches = expected.length === actual.length && timingSafeEqual(expected, actual)
  if (record == null || !matches) throw new InvalidTokenError(`join token ${id} is not valid for this cluster`, { id })
  if (nowMs >= record.expiresAtMs) {
    throw new TokenExpiredError(`join token ${id} expired at ${new Date(record.expiresAtMs).toISOString()}`, { id, expiresAtMs: record.expiresAtMs })
  }
  if (record.usesLeft !== undefined && record.usesLeft < 1) throw new InvalidTokenError(`join token ${id} is used up`, { id })
  if (peer !== undefined && record.forPeer !== undefined && record.forPeer !== peer) {
    throw new InvalidTokenError(`join token ${id} is for another node`, { id, peer })
  }
  return record
}

function hashSecret (secret: string): string {
  return `sha256:${createHash('sha256').update(secret).digest('hex')}`
}

/** Largest join token file read (a token is one short line). */
const JOIN_TOKEN_FILE_BYTES_MAX = 4096

/**
 * Reads a join token from a file (`dfs node start --join-token-file`), trimmed. As ssh does with
 * private keys, a file that other users may read or write is refused (ConfigError): the token is a
 * secret until it is used up.
 */
export async function readJoinTokenFile (path: string): Promise<string> {
  let handle: FileHandle
  try {
    handle = await open(path, 'r')
  } catch (err) {
    throw new ConfigError(`cannot read the join token file ${path}: ${(err as Error).message}`, { path })
  }
  try {
    const st = await handle.stat()
    if (!st.isFile()) throw new ConfigError(`the join token file ${path} is not a regular file`, { path })
    if (process.platform !== 'win32' && (st.mode & 0o077) !== 0) {
      throw new ConfigError(`the join token file ${path} is accessible to other users (mode ${(st.mode & 0o777).toString(8)}): chmod 600 it`, { path })
    }
    if (st.size > JOIN_TOKEN_FILE_BYTES_MAX) throw new ConfigError(`the join token file ${path} is larger than ${JOIN_TOKEN_FILE_BYTES_MAX} bytes`, { path })
    const buf = Buffer.alloc(JOIN_TOKEN_FILE_BYTES_MAX + 1)
    const { bytesRead } = await handle.read(buf, 0, buf.length, 0)
    const token = buf.subarray(0, Math.min(bytesRead, JOIN_TOKEN_FILE_BYTES_MAX)).toString('utf8').trim()
    if (token === '') throw new ConfigError(`the join token file ${path} is empty`, { path })
    return token
  } finally {
    await handle.close()
  }
}
