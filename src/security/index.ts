import { PermissionDeniedError, type CallOptions, type MetadataService, type Role } from '@dfs/api'

/**
 * Actions an RPC handler asks about. Each RPC method names exactly one; roles grant sets of them.
 */
export const Action = {
  FsRead: 'fs.read',
  FsWrite: 'fs.write',
  ClusterRead: 'cluster.read',
  ClusterAdmin: 'cluster.admin'
} as const

export type ActionName = typeof Action[keyof typeof Action]

const ROLE_ACTIONS: Record<Role, ReadonlySet<string>> = {
  admin: new Set(Object.values(Action)),
  user: new Set([Action.FsRead, Action.FsWrite, Action.ClusterRead]),
  readonly: new Set([Action.FsRead, Action.ClusterRead])
}

export interface SecurityInit {
  /** PeerId of this node: its own key may do anything. */
  nodeId: string
  metadata: MetadataService
}

/**
 * Authorization of every request by the PeerId that Noise proved. The node's own key is Admin; other
 * peers get the role bound to their PeerId in cluster metadata (the identity that created the
 * cluster is bound to Admin at creation); a peer with no role is refused.
 */
export class Security {
  readonly #nodeId: string
  readonly #metadata: MetadataService

  constructor (init: SecurityInit) {
    this.#nodeId = init.nodeId
    this.#metadata = init.metadata
  }

  async roleOf (peer: string, options?: CallOptions): Promise<Role | undefined> {
    if (peer === this.#nodeId) return 'admin'
    return await this.#metadata.read((view) => view.role(peer), options)
  }

  async authorize (peer: string, action: string, options?: CallOptions): Promise<void> {
    const role = await this.roleOf(peer, options)
    if (role == null) {
      throw new PermissionDeniedError(`peer ${peer} is not a member or user of this cluster`, { peer, action })
    }
    if (!ROLE_ACTIONS[role].has(action)) {
      throw new PermissionDeniedError(`role ${role} may not perform ${action}`, { peer, role, action })
    }
  }
}
