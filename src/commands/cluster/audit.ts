import * as Flags from '@oclif/core/flags'
import { InvalidArgumentError } from '@dfs/api'
import type { AuditEntry, AuditPage, AuditVerification } from '@dfs/api'
import { ClientCommand } from '../../cli/base-command.js'
import { parseDuration } from '../../cli/duration.js'

/** An entry as `dfs cluster audit --json` prints it: an AuditEntry with its time in ISO 8601 (UTC). */
export type AuditEntryJson = Omit<AuditEntry, 'timeMs'> & { time: string }

export type AuditJson = { entries: AuditEntryJson[] } | Omit<AuditVerification, 'node'> & { node: string }

/** The most entries one command asks for. */
const LIMIT_MAX = 10_000

/** `--since`: an ISO 8601 time, or a duration back from now (`10m`, `2h`, `7d`). */
export function parseSince (text: string, nowMs: number): number {
  const t = text.trim()
  if (/^(\d+(ms|s|m|h|d))+$/.test(t)) return nowMs - parseDuration(t)
  const ms = /^\d{4}-\d{2}-\d{2}/.test(t) ? Date.parse(t) : NaN
  if (Number.isNaN(ms)) throw new InvalidArgumentError(`--since ${JSON.stringify(text)} is neither an ISO 8601 time nor a duration such as 10m`, { since: text })
  return ms
}

function toJson (e: AuditEntry): AuditEntryJson {
  return {
    seq: e.seq,
    time: new Date(e.timeMs).toISOString(),
    user: e.user,
    role: e.role,
    tenant: e.tenant,
    operation: e.operation,
    resource: e.resource,
    success: e.success,
    error: e.error,
    count: e.count,
    node: e.node,
    hash: e.hash
  }
}

export default class ClusterAudit extends ClientCommand<AuditJson> {
  static override summary = 'Show the audit log, or verify its hash chain'
  static override description = `Every mutating operation and every refused request (PermissionDenied, InvalidToken, TokenExpired, QuotaExceeded, RateLimited) is recorded through Raft; entries are listed newest last. Repeated refusals from one caller within a fraction of a second are one entry with a count.

--verify checks the hash chain of the log that the node you talk to (--node) stores, and fails with AuditChainBroken naming the first entry that does not match.

A tenant's admin sees only its tenant's entries. Retention: dfs cluster config set audit-retention N.`

  static override examples = [
    '<%= config.bin %> cluster audit --limit 20',
    '<%= config.bin %> cluster audit --since 10m --failed',
    '<%= config.bin %> cluster audit --verify --node 127.0.0.1:4001 --json'
  ]

  static override flags = {
    limit: Flags.integer({ description: `most entries to show (the newest; 1–${LIMIT_MAX})`, default: 100, min: 1, max: LIMIT_MAX }),
    since: Flags.string({ description: 'only entries since this time: ISO 8601 (2026-01-31T12:00:00Z) or a duration back from now (10m, 2h, 7d)' }),
    user: Flags.string({ description: 'only entries of this caller (PeerId)' }),
    failed: Flags.boolean({ description: 'only failed and refused operations' }),
    verify: Flags.boolean({ description: 'verify the hash chain of the log this node stores instead of listing it', exclusive: ['since', 'user', 'failed'] })
  }

  async run (): Promise<AuditJson> {
    const { flags } = await this.parse(ClusterAudit)
    const client = await this.client(flags)
    if (flags.verify) {
      const r = await client.call('cluster.audit', { verify: true }) as AuditVerification
      this.say(`audit chain verified on ${r.node}: ${r.entries} entries, head ${r.head}`)
      return { verified: true, entries: r.entries, head: r.head, node: r.node }
    }
    const sinceMs = flags.since !== undefined ? parseSince(flags.since, Date.now()) : undefined
    const query = {
      ...(sinceMs !== undefined ? { sinceMs } : {}),
      ...(flags.user !== undefined ? { user: flags.user } : {}),
      ...(flags.failed ? { failed: true } : {})
    }
    // pages come newest first, each oldest first within: older pages go in front
    let entries: AuditEntry[] = []
    let beforeSeq: number | undefined
    while (entries.length < flags.limit) {
      const page = await client.call('cluster.audit', { ...query, limit: flags.limit - entries.length, ...(beforeSeq !== undefined ? { beforeSeq } : {}) }) as AuditPage
      entries = [...page.entries, ...entries]
      if (!page.more || page.entries.length === 0) break
      beforeSeq = page.entries[0].seq
    }
    for (const e of entries) {
      const outcome = e.success ? 'ok' : (e.error ?? 'failed')
      const times = e.count > 1 ? ` x${e.count}` : ''
      this.say(`${new Date(e.timeMs).toISOString()}  #${e.seq}  ${this.shown(e.user)} (${e.role ?? 'stranger'}${e.tenant != null ? `@${this.shown(e.tenant)}` : ''})  ` +
        `${this.shown(e.operation)} ${this.shown(e.resource) || '-'}  ${outcome}${times}`)
    }
    return { entries: entries.map(toJson) }
  }
}
