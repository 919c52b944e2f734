import { createHash } from 'node:crypto'
import type { PeerIdString, Role } from './metadata.js'

/**
 * The audit log: every mutating operation and every refused request, recorded through the system
 * group's Raft log. Entries are hash-chained: an entry's `hash` is SHA-256 over the previous entry's
 * hash and this entry's fields (auditEntryHash), so a change to any stored entry, or a removed or
 * inserted one, breaks the chain from there on. Retention drops the oldest entries; the chain then
 * starts at a checkpoint (the seq and hash of the last entry dropped).
 */

/** What a node records: an entry before the log gives it a place in the chain. */
export interface AuditRecord {
  /** When the operation ended (the recording node's clock, ms since the epoch). */
  timeMs: number
  /** The Noise-proven PeerId of the caller. */
  user: PeerIdString
  /** The caller's role then: a granted role, `node` for a member acting as one, null for a stranger. */
  role: Role | 'node' | null
  /** The caller's tenant (null: cluster-wide or none). */
  tenant: string | null
  /** What was asked: the RPC method (`fs.put`, `user.grant`, …) or an access layer's operation. */
  operation: string
  /** What it named: a path (in the caller's namespace), a PeerId, a token id, a setting… ('' if none). */
  resource: string
  success: boolean
  /** The typed error's name when it failed (`PermissionDenied`, `QuotaExceeded`, …), else null. */
  error: string | null
  /** Identical refusals aggregated into this entry (1 for a single event). */
  count: number
  /** The node that served the request and recorded it. */
  node: PeerIdString
}

/** An entry as the log keeps it. */
export interface AuditEntry extends AuditRecord {
  /** Position in the chain: 1 for the first entry ever, +1 per entry, never reused. */
  seq: number
  /** Lower-case hex SHA-256 of (previous hash, this entry's fields): see auditEntryHash. */
  hash: string
}

/** Where the retained chain starts: the last dropped entry (seq 0 and AUDIT_GENESIS_HASH when none was). */
export interface AuditCheckpoint {
  seq: number
  hash: string
}

/** The `previous hash` of the first entry. */
export const AUDIT_GENESIS_HASH = '0'.repeat(64)

/** Entries kept by default (the oldest are dropped past it; cluster setting `auditRetention`). */
export const AUDIT_RETENTION_DEFAULT = 10_000
export const AUDIT_RETENTION_MIN = 100
export const AUDIT_RETENTION_MAX = 1_000_000

/** Most records one AppendAudit operation carries. */
export const AUDIT_BATCH_MAX = 256
/** Longest operation or resource string an entry keeps (longer ones are cut, with a trailing `…`). */
export const AUDIT_FIELD_LENGTH_MAX = 512

/**
 * The hash of an entry: SHA-256 over `prevHash` and the entry's fields in a fixed order, as one
 * JSON array (JSON.stringify of strings, numbers, booleans and null is deterministic).
 */
export function auditEntryHash (prevHash: string, entry: Omit<AuditEntry, 'hash'>): string {
  const fields = [
    prevHash, entry.seq, entry.timeMs, entry.user, entry.role, entry.tenant, entry.operation,
    entry.resource, entry.success, entry.error, entry.count, entry.node
  ]
  return createHash('sha256').update(JSON.stringify(fields), 'utf8').digest('hex')
}

/**
 * Checks the chain: each entry's seq follows the previous one's (the checkpoint's for the first) and
 * its hash is auditEntryHash of the previous hash and its fields. Returns the seq of the first bad
 * entry, or undefined when all are good.
 */
export function firstBrokenAuditEntry (checkpoint: AuditCheckpoint, entries: readonly AuditEntry[]): number | undefined {
  let prev = checkpoint
  for (const e of entries) {
    if (e.seq !== prev.seq + 1 || auditEntryHash(prev.hash, e) !== e.hash) return e.seq
    prev = e
  }
  return undefined
}
