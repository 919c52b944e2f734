import {
  NotFoundError, PermissionDeniedError, requireTenantName, type CallOptions, type MetadataService, type MetadataView, type Role,
  type RpcAction, type UserRecord
} from '@dfs/api'

/**
 * Actions an RPC handler asks about. Each RPC method names exactly one; roles grant sets of them.
 */
export const Action = {
  FsRead: 'fs.read',
  FsWrite: 'fs.write',
  ClusterRead: 'cluster.read',
  ClusterAdmin: 'cluster.admin',
  /** Asking to join: open to any peer; the join token it presents is the authorization. */
  ClusterJoin: 'cluster.join',
  /** Node-to-node work (reading extents of another node): members only. */
  ExtentRead: 'extent.read',
  /** Node-to-node work (storing, copying and deleting extents on another node): members only. */
  ExtentWrite: 'extent.write',
  /** Node-to-node queries (another node's own figures): members only. */
  NodePeer: 'node.peer',
  /** Granting, revoking and listing users: a cluster-wide admin, or a tenant admin within its tenant. */
  UserAdmin: 'user.admin',
  /** Reading the audit log: a cluster-wide admin, or a tenant admin (its tenant's entries). */
  AuditRead: 'audit.read'
} as const satisfies Record<string, RpcAction>

export type ActionName = typeof Action[keyof typeof Action]

/** Every action the RPC contract names is one of these (fails to compile otherwise). */
type Covers<T extends ActionName> = T
export type EveryRpcActionKnown = Covers<RpcAction>

/** What a member's key may do as a node: never anything a client does. */
export const NODE_ACTIONS: ReadonlySet<string> = new Set([Action.ExtentRead, Action.ExtentWrite, Action.NodePeer, Action.ClusterJoin])

/**
 * What each role may do, cluster-wide (`cluster`) or when the grant is bound to a tenant (`tenant`).
 * A tenant's admin manages its tenant's files and users and reads cluster status, nothing else.
 */
export const ROLE_ACTIONS: Readonly<Record<Role, { cluster: ReadonlySet<string>, tenant: ReadonlySet<string> }>> = {
  admin: {
    cluster: new Set([Action.FsRead, Action.FsWrite, Action.ClusterRead, Action.ClusterAdmin, Action.UserAdmin, Action.AuditRead]),
    tenant: new Set([Action.FsRead, Action.FsWrite, Action.ClusterRead, Action.UserAdmin, Action.AuditRead])
  },
  user: {
    cluster: new Set([Action.FsRead, Action.FsWrite, Action.ClusterRead]),
    tenant: new Set([Action.FsRead, Action.FsWrite, Action.ClusterRead])
  },
  readonly: {
    cluster: new Set([Action.FsRead, Action.ClusterRead]),
    tenant: new Set([Action.FsRead, Action.ClusterRead])
  }
}

/**
 * Who a peer is to this node: a member (its key acts as a node), a user (a grant), both, or neither.
 * A member's key is not a user: it gets NODE_ACTIONS, plus its grant's actions when it has one.
 */
export interface Caller {
  peer: string
  member: boolean
  user: UserRecord | undefined
}

/** Whether `caller` may perform `action` (the role table, as a pure function). */
export function mayPerform (caller: Pick<Caller, 'member' | 'user'>, action: string): boolean {
  if (action === Action.ClusterJoin) return true
  if (caller.member && NODE_ACTIONS.has(action)) return true
  const user = caller.user
  if (user === undefined) return false
  const table = ROLE_ACTIONS[user.role]
  return (user.tenant === null ? table.cluster : table.tenant).has(action)
}

/** A cluster-wide admin (the only callers that may act in any tenant or manage tenants). */
export function isClusterAdmin (user: UserRecord | undefined): boolean {
  return user?.role === 'admin' && user.tenant === null
}

/**
 * The namespace a file call acts in: the caller's tenant for a user bound to one (naming another is
 * PermissionDenied), else the default namespace, or `requested` for a cluster-wide admin (anyone
 * else naming a tenant is refused).
 */
export function namespaceOf (caller: Pick<Caller, 'peer' | 'user'>, requested: string | undefined): string | null {
  const own = caller.user?.tenant ?? null
  if (requested === undefined) return own
  requireTenantName(requested)
  if (own !== null) {
    if (requested !== own) throw new PermissionDeniedError(`peer ${caller.peer} acts in tenant ${own} only`, { peer: caller.peer, tenant: requested })
    return own
  }
  if (!isClusterAdmin(caller.user)) {
    throw new PermissionDeniedError('only a cluster-wide admin may act in a tenant it does not belong to', { peer: caller.peer, tenant: requested })
  }
  return requested
}

export interface SecurityInit {
  /** PeerId of this node: its own key acts as a node. */
  nodeId: string
  metadata: MetadataService
}

/**
 * Authorization of every request by the PeerId that Noise proved, against this node's applied
 * metadata (a grant or revocation takes effect here as soon as this node applies it, which is within
 * a heartbeat interval of its commit). Members, this node included, act as nodes (NODE_ACTIONS);
 * users get their role's actions (ROLE_ACTIONS); a member that was granted a role gets both; anyone
 * else is refused everything but asking to join with a token.
 */
export class Security {
  readonly #nodeId: string
  readonly #metadata: MetadataService

  constructor (init: SecurityInit) {
    this.#nodeId = init.nodeId
    this.#metadata = init.metadata
  }

  async #lookup<T> (fn: (view: MetadataView) => T, options?: CallOptions): Promise<T> {
    return this.#metadata.staleRead != null
      ? this.#metadata.staleRead(fn)
      : await this.#metadata.read(fn, { ...options, scope: { system: true } })
  }

  /** Who `peer` is, as this node's applied state says. */
  async caller (peer: string, options?: CallOptions): Promise<Caller> {
    return await this.#lookup((view) => ({
      peer,
      member: peer === this.#nodeId || view.members().some((m) => m.id === peer),
      user: view.user(peer)
    }), options)
  }

  /**
   * The peer's standing for admission: `node` for any member (granted a role or not: its connections
   * carry Raft, gossip and DHT traffic), else its granted role, else undefined (a stranger).
   */
  async roleOf (peer: string, options?: CallOptions): Promise<Role | 'node' | undefined> {
    const c = await this.caller(peer, options)
    return c.member ? 'node' : c.user?.role
  }

  async authorize (peer: string, action: string, options?: CallOptions): Promise<void> {
    if (action === Action.ClusterJoin) return
    const c = await this.caller(peer, options)
    if (mayPerform(c, action)) return
    if (c.user === undefined) {
      throw new PermissionDeniedError(c.member
        ? `peer ${peer} is a member of this cluster, and a member's key may act only as a node (${action} needs a granted role)`
        : `peer ${peer} is not a member or user of this cluster`, { peer, action })
    }
    const where = c.user.tenant === null ? '' : ` in tenant ${c.user.tenant}`
    throw new PermissionDeniedError(`role ${c.user.role}${where} may not perform ${action}`,
      { peer, role: c.user.role, tenant: c.user.tenant, action })
  }

  /**
   * The namespace a file call of `peer` acts in (see namespaceOf); a tenant a cluster-wide admin
   * names must exist on this node's applied state (NotFound otherwise).
   */
  async namespace (peer: string, requested: string | undefined, options?: CallOptions): Promise<string | null> {
    const c = await this.caller(peer, options)
    const ns = namespaceOf(c, requested)
    if (ns !== null && requested !== undefined && c.user?.tenant == null) {
      const exists = this.#metadata.staleRead != null
        ? this.#metadata.staleRead((view) => view.tenant(ns)) !== undefined
        : true
      if (!exists) throw new NotFoundError(`no tenant ${ns}`, { tenant: ns })
    }
    return ns
  }
}
