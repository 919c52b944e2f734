/**
 * The cluster overview (ClusterOverview): what the status page and `dfs cluster top` show, gathered
 * from the same sources as `cluster.status`, `cluster.nodes`, `cluster.shards` and
 * `cluster.replication` (their helpers in handlers/cluster.ts), plus the newest audit entries for a
 * caller that may read them.
 */
import {
  Deadline, OVERVIEW_AUDIT_ENTRIES, OVERVIEW_AUDIT_FIELD_MAX, OVERVIEW_GROUPS_MAX, OVERVIEW_NODES_MAX
} from '@dfs/api'
import type {
  AuditEntry, ClusterOverview, MemberRecord, MetadataView, OverviewAuditEntry, OverviewGroup, OverviewNode, OverviewReplication, PeerIdString
} from '@dfs/api'
import { Action, mayPerform, type Caller } from '../security/index.js'
import { defineMethod } from '../net/rpc/define-method.js'
import type { RpcMethod } from '../net/rpc/types.js'
import { record } from './handlers/params.js'
import { nodeInfos, replicationStatus, shardMap, type ClusterMethodsInit } from './handlers/cluster.js'

/**
 * Longest the replication figures may take (a linearizable read, and a question to the repair
 * coordinator): past it the overview answers without them (`replication.error`), so a cluster
 * without a quorum still gets its overview.
 */
export const OVERVIEW_REPLICATION_TIMEOUT_MS = 3000

/** Whose audit entries an overview carries: none, every tenant's (`tenant` null), or one tenant's. */
export type OverviewAudit = { tenant: string | null } | undefined

export interface OverviewOptions {
  signal?: AbortSignal
  audit?: OverviewAudit
}

/** What one pass over this node's applied state yields. */
interface Applied {
  clusterId: string
  members: MemberRecord[]
  copies: Map<PeerIdString, { copies: number, bytes: number }>
  moves: number
  audit: OverviewAuditEntry[] | null
}

function cut (s: string): string {
  return s.length <= OVERVIEW_AUDIT_FIELD_MAX ? s : s.slice(0, OVERVIEW_AUDIT_FIELD_MAX - 1) + '…'
}

/** The newest OVERVIEW_AUDIT_ENTRIES entries `tenant` may see (null: all), oldest first, without hashes. */
function recentAudit (entries: readonly AuditEntry[], tenant: string | null): OverviewAuditEntry[] {
  const out: OverviewAuditEntry[] = []
  for (let i = entries.length - 1; i >= 0 && out.length < OVERVIEW_AUDIT_ENTRIES; i--) {
    const { hash: _, ...e } = entries[i]
    if (tenant !== null && e.tenant !== tenant) continue
    out.push({ ...e, operation: cut(e.operation), resource: cut(e.resource), user: cut(e.user), node: cut(e.node) })
  }
  return out.reverse()
}

/**
 * Members, copies per node, moves and audit entries from one view. The extent scan is O(extents),
 * like the replication status beside it; the status page runs it at most once per refresh, however
 * many browsers watch.
 */
function readApplied (view: MetadataView, audit: OverviewAudit): Applied {
  const copies = new Map<PeerIdString, { copies: number, bytes: number }>()
  let moves = 0
  for (const id of view.extentIds()) {
    const e = view.getExtent(id)
    if (e === undefined) continue
    if (e.move !== undefined) moves++
    for (const r of e.replicas) {
      const c = copies.get(r) ?? { copies: 0, bytes: 0 }
      c.copies++
      c.bytes += e.size
      copies.set(r, c)
    }
  }
  return {
    clusterId: view.cluster()?.clusterId ?? '',
    members: view.members(),
    copies,
    moves,
    audit: audit === undefined ? null : recentAudit(view.audit().entries, audit.tenant)
  }
}

/**
 * The overview as this node sees it. Membership, copies and audit come from its applied state
 * (staleRead, when the service has it: no quorum is needed); the replication figures are bounded by
 * OVERVIEW_REPLICATION_TIMEOUT_MS and reported missing, with the reason, past it.
 */
export async function collectOverview (init: ClusterMethodsInit, options: OverviewOptions = {}): Promise<ClusterOverview> {
  const { metadata } = init
  const auditScope = options.audit
  const applied = metadata.staleRead !== undefined
    ? metadata.staleRead((view) => readApplied(view, auditScope))
    : await metadata.read((view) => readApplied(view, auditScope), { signal: options.signal, scope: { system: true, extents: true } })
  const status = metadata.status()
  const map = shardMap(init.nodeId, metadata)

  const groups: OverviewGroup[] = map.groups
    .slice()
    .sort((a, b) => a.group - b.group)
    .slice(0, OVERVIEW_GROUPS_MAX)
    .map((g) => ({ group: g.group, kind: g.kind, shards: g.shards.length, leader: g.leader, term: g.term, voters: g.voters, learners: g.learners }))

  const voterIn = new Map<string, number[]>()
  const leads = new Map<string, number[]>()
  for (const g of groups) {
    for (const v of g.voters) voterIn.set(v, [...(voterIn.get(v) ?? []), g.group])
    if (g.leader !== null) leads.set(g.leader, [...(leads.get(g.leader) ?? []), g.group])
  }
  const nodes: OverviewNode[] = nodeInfos(init, applied.members)
    .sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : a.id < b.id ? -1 : a.id > b.id ? 1 : 0)
    .slice(0, OVERVIEW_NODES_MAX)
    .map((n) => ({
      id: n.id,
      name: n.name,
      region: n.region,
      health: n.health,
      self: n.id === init.nodeId,
      draining: n.draining,
      usedBytes: n.usedBytes,
      capacityBytes: n.capacityBytes,
      voterIn: voterIn.get(n.id) ?? [],
      leads: leads.get(n.id) ?? [],
      copies: applied.copies.get(n.id)?.copies ?? 0,
      copyBytes: applied.copies.get(n.id)?.bytes ?? 0
    }))

  const replication: OverviewReplication = { movesRecorded: applied.moves }
  const deadline = new Deadline(OVERVIEW_REPLICATION_TIMEOUT_MS, options.signal)
  try {
    const status = await replicationStatus(init, false, deadline.signal)
    Object.assign(replication, status, { movesRecorded: status.movesRecorded ?? applied.moves })
  } catch (err) {
    replication.error = `${(err as Error).name}: ${(err as Error).message}`.slice(0, OVERVIEW_AUDIT_FIELD_MAX)
  } finally {
    deadline.clear()
  }

  return {
    clusterId: applied.clusterId,
    node: init.nodeId,
    timeMs: Date.now(),
    leader: status.leader ?? null,
    term: status.term,
    nodes,
    nodesTotal: applied.members.length,
    groups,
    replication,
    audit: applied.audit
  }
}

export interface OverviewMethodsInit extends ClusterMethodsInit {
  /** Who a peer is (its grant decides whether the overview carries audit entries). */
  caller: (peer: string) => Promise<Caller>
}

/**
 * `cluster.overview` (cluster.read): the overview, with the newest audit entries when the caller may
 * also read the audit log (a tenant's admin: its tenant's entries only, as `cluster.audit`).
 */
export function overviewMethods (init: OverviewMethodsInit): RpcMethod[] {
  return [
    defineMethod('cluster.overview', {
      action: Action.ClusterRead,
      kind: 'unary',
      params: (raw) => record(raw ?? {}, 'cluster.overview'),
      handle: async ({ peer, signal }) => {
        const caller = await init.caller(peer)
        const audit: OverviewAudit = mayPerform(caller, Action.AuditRead) ? { tenant: caller.user?.tenant ?? null } : undefined
        return await collectOverview(init, { signal, audit })
      }
    })
  ]
}
