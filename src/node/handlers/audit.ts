import { AuditChainBrokenError, InvalidArgumentError, firstBrokenAuditEntry } from '@dfs/api'
import type { AuditEntry, AuditPage, AuditVerification, MetadataService, PeerIdString } from '@dfs/api'
import { defineMethod } from '../../net/rpc/define-method.js'
import type { RpcMethod } from '../../net/rpc/types.js'
import { FRAME_BYTES_MAX } from '../../net/constants.js'
import { integer, record, text } from './params.js'

/** Entries `cluster.audit` answers when the caller gives no limit. */
export const AUDIT_QUERY_LIMIT_DEFAULT = 100
/** Most entries one query asks for (the CLI's --limit). */
export const AUDIT_QUERY_LIMIT_MAX = 10_000
/**
 * Most bytes of entries in one answer: half an RPC frame, so an answer of entries at their longest
 * (AUDIT_FIELD_LENGTH_MAX fields, multi-byte characters) still fits one frame with its encoding's
 * overhead. A query that matches more is answered in pages (`more`, then `beforeSeq`).
 */
export const AUDIT_PAGE_BYTES_MAX = Math.floor(FRAME_BYTES_MAX / 2)
/** What an entry costs in an answer beyond its strings' bytes (field names, numbers, booleans). */
const ENTRY_OVERHEAD_BYTES = 160

export interface AuditMethodsInit {
  /** This node's PeerId: answers name the node whose copy of the log they read. */
  nodeId: PeerIdString
  metadata: Pick<MetadataService, 'read'>
}

/** What `cluster.audit` asks, checked. */
export interface AuditQuery {
  limit: number
  sinceMs?: number
  user?: string
  failed: boolean
  beforeSeq?: number
  verify: boolean
}

function bool (params: Record<string, unknown>, key: string): boolean {
  const v = params[key]
  if (v == null) return false
  if (typeof v !== 'boolean') throw new InvalidArgumentError(`parameter ${key} must be true or false`, { key })
  return v
}

export function parseAuditQuery (raw: unknown): AuditQuery {
  const p = record(raw ?? {}, 'cluster.audit')
  const sinceMs = integer(p, 'sinceMs', { min: 0, max: 8.64e15, optional: true })
  const user = text(p, 'user', { optional: true, max: 128 })
  const beforeSeq = integer(p, 'beforeSeq', { min: 1, max: Number.MAX_SAFE_INTEGER, optional: true })
  return {
    limit: integer(p, 'limit', { min: 1, max: AUDIT_QUERY_LIMIT_MAX, optional: true }) ?? AUDIT_QUERY_LIMIT_DEFAULT,
    failed: bool(p, 'failed'),
    verify: bool(p, 'verify'),
    ...(sinceMs !== undefined ? { sinceMs } : {}),
    ...(user !== undefined ? { user } : {}),
    ...(beforeSeq !== undefined ? { beforeSeq } : {})
  }
}

/** Bytes an entry adds to an answer, at most (strings as UTF-8, plus the rest). */
function entryBytes (e: AuditEntry): number {
  return ENTRY_OVERHEAD_BYTES + Buffer.byteLength(e.user) + Buffer.byteLength(e.operation) + Buffer.byteLength(e.resource) +
    Buffer.byteLength(e.node) + e.hash.length + (e.role?.length ?? 0) + Buffer.byteLength(e.tenant ?? '') + (e.error?.length ?? 0)
}

/**
 * The newest entries of `entries` (oldest first) that match `query` and are visible to a caller of
 * `tenant` (null: every entry), at most `query.limit` and AUDIT_PAGE_BYTES_MAX bytes; `more` when
 * the byte bound cut the page short of the limit and older matches remain.
 */
export function auditPage (entries: readonly AuditEntry[], query: AuditQuery, tenant: string | null): { entries: AuditEntry[], more: boolean } {
  const page: AuditEntry[] = []
  let bytes = 0
  let more = false
  for (let i = entries.length - 1; i >= 0 && page.length < query.limit; i--) {
    const e = entries[i]
    if (query.beforeSeq !== undefined && e.seq >= query.beforeSeq) continue
    if (tenant !== null && e.tenant !== tenant) continue
    if (query.sinceMs !== undefined && e.timeMs < query.sinceMs) continue
    if (query.user !== undefined && e.user !== query.user) continue
    if (query.failed && e.success) continue
    const size = entryBytes(e)
    if (bytes + size > AUDIT_PAGE_BYTES_MAX && page.length > 0) { more = true; break }
    bytes += size
    page.push({ ...e })
  }
  return { entries: page.reverse(), more }
}

/**
 * `cluster.audit`: reads this node's copy of the audit log after a linearizable read of the system
 * group (so it holds every entry committed before the call), and answers a page of it or checks its
 * hash chain. A tenant's admin sees only its tenant's entries; its `verify` checks the whole chain
 * (one chain links every tenant's entries) but answers only the count and the head.
 */
export function auditMethods (init: AuditMethodsInit): RpcMethod[] {
  return [
    defineMethod('cluster.audit', {
      action: 'audit.read',
      kind: 'unary',
      params: parseAuditQuery,
      handle: async ({ peer, params, signal }): Promise<AuditPage | AuditVerification> => {
        // everything is computed inside the read, against one applied state
        const answer = await init.metadata.read((view) => {
          const { checkpoint, entries } = view.audit()
          const tenant = view.user(peer)?.tenant ?? null
          if (params.verify) {
            const broken = firstBrokenAuditEntry(checkpoint, entries)
            return { verify: true as const, broken, count: entries.length, head: entries.at(-1)?.hash ?? checkpoint.hash, checkpoint }
          }
          return { verify: false as const, ...auditPage(entries, params, tenant) }
        }, { signal, scope: { system: true } })
        if (!answer.verify) return { entries: answer.entries, more: answer.more, node: init.nodeId }
        if (answer.broken !== undefined) {
          throw new AuditChainBrokenError(`audit entry ${answer.broken} on node ${init.nodeId} does not match the hash chain`,
            { seq: answer.broken, node: init.nodeId, checkpoint: answer.checkpoint.seq })
        }
        return { verified: true, entries: answer.count, head: answer.head, node: init.nodeId }
      }
    })
  ]
}
