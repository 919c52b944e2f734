import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import { InvalidTokenError, TokenExpiredError, type JoinTokenRecord, type MetadataView } from '@dfs/api'

/**
 * Join tokens: `dfs-join.<id>.<secret>`, where id is 16 hex digits (public, names the token in
 * metadata) and secret is 32 random bytes in base64url. Metadata keeps only sha256(secret), so
 * whoever can read metadata still cannot join. A token admits any number of nodes until it expires.
 */

const TOKEN_PATTERN = /^dfs-join\.([0-9a-f]{16})\.([A-Za-z0-9_-]{43})$/

/** Longest a token may live (as kubeadm, tokens are meant to be short-lived). */
export const JOIN_TOKEN_TTL_MS_MAX = 30 * 24 * 3600 * 1000
export const JOIN_TOKEN_TTL_MS_DEFAULT = 3600 * 1000

export function mintJoinToken (createdBy: string, ttlMs: number, nowMs: number): { token: string, record: JoinTokenRecord } {
  if (!Number.isSafeInteger(ttlMs) || ttlMs < 1000 || ttlMs > JOIN_TOKEN_TTL_MS_MAX) {
    throw new RangeError(`join token ttl ${ttlMs} ms out of range`)
  }
  const id = randomBytes(8).toString('hex')
  const secret = randomBytes(32).toString('base64url')
  return {
    token: `dfs-join.${id}.${secret}`,
    record: { id, secretHash: hashSecret(secret), createdAtMs: nowMs, expiresAtMs: nowMs + ttlMs, createdBy }
  }
}

/** Checks a presented token against metadata at time `nowMs`; returns its record or throws. */
export function verifyJoinToken (view: MetadataView, presented: unknown, nowMs: number): JoinTokenRecord {
  const m = typeof presented === 'string' ? TOKEN_PATTERN.exec(presented) : null
  if (m == null) throw new InvalidTokenError('the join token is malformed (expected dfs-join.<id>.<secret>)')
  const [, id, secret] = m
  const record = view.joinToken(id)
  const expected = Buffer.from(record?.secretHash ?? 'sha256:' + '0'.repeat(64))
  const actual = Buffer.from(hashSecret(secret))
  // compare in constant time even when the id is unknown, so timing tells nothing about ids
  const matches = timingSafeEqual(expected, actual)
  if (record == null || !matches) throw new InvalidTokenError(`join token ${id} is not valid for this cluster`, { id })
  if (nowMs >= record.expiresAtMs) {
    throw new TokenExpiredError(`join token ${id} expired at ${new Date(record.expiresAtMs).toISOString()}`, { id, expiresAtMs: record.expiresAtMs })
  }
  return record
}

function hashSecret (secret: string): string {
  return `sha256:${createHash('sha256').update(secret).digest('hex')}`
}
