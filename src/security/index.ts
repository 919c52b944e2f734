import { PermissionDeniedError, type CallOptions, type MetadataService, type MetadataView, type Role, type RpcAction } from '@dfs/api'

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
  ExtentWrite: 'extent.write'
} as const satisfies Record<string, RpcAction>

export type ActionName = typeof Action[keyof typeof Action]

/** Every action the RPC contract names is one of these (fails to compile otherwise). */
type Covers<T extends ActionName> = T
export type EveryRpcActionKnown = Covers<RpcAction>

const ROLE_ACTIONS: Record<Role | 'node', ReadonlySet<string>> = {
  /** Cluster members (nodes) act for clients they serve and for each other. */
  node: new Set(Object.values(Action)),
  admin: new Set([Action.FsRead, Action.FsWrite, Action.ClusterRead, Action.ClusterAdmin]),
  user: new Set([Action.FsRead, Action.FsWrite, Action.ClusterRead]),
  readonly: new Set([Action.FsRead, Action.ClusterRead])
}

export interface SecurityInit {
  /** PeerId of this node: its own key may do anything. */
  nodeId: string
  metadata: MetadataService
}

/**
 * Authorization of every request by the PeerId that Noise proved. The node's own key and the other
 * members of the cluster act as nodes; other peers get the role bound to their PeerId in cluster
 * metadata (the identity that created the cluster is bound to Admin at creation); a peer with no
 * role is refused everything but asking to join with a token.
 */
export class Security {
  readonly #nodeId: string
  readonly #metadata: MetadataService

  constructor (init: SecurityInit) {
    this.#nodeId = init.nodeId
    this.#metadata = init.metadata
  }

  async roleOf (peer: string, options?: CallOptions): Promise<Role | 'node' | undefined> {
    if (peer === this.#nodeId) return 'node'
    const lookup = (view: MetadataView): Role | 'node' | undefined =>
      view.members().some((m) => m.id === peer) ? 'node' : view.role(peer)
    // this node's applied state decides: a grant or revocation takes effect here once applied
    return this.#metadata.staleRead != null
      ? this.#metadata.staleRead(lookup)
      : await this.#metadata.read(lookup, { ...options, scope: { system: true } })
  }

  async authorize (peer: string, action: string, options?: CallOptions): Promise<void> {
    if (action === Action.ClusterJoin) return
    const role = await this.roleOf(peer, options)
    if (role == null) {
      throw new PermissionDeniedError(`peer ${peer} is not a member or user of this cluster`, { peer, action })
    }
    if (!ROLE_ACTIONS[role].has(action)) {
      throw new PermissionDeniedError(`role ${role} may not perform ${action}`, { peer, role, action })
    }
  }
}
