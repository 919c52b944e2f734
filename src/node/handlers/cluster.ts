import { Action } from '../../security/index.js'
import { JOIN_TOKEN_TTL_MS_DEFAULT, JOIN_TOKEN_TTL_MS_MAX, mintJoinToken } from '../../security/join-token.js'
import { integer, record } from './params.js'
import type { MetadataService } from '@dfs/api'
import type { RpcMethod } from '../../net/rpc/types.js'

export interface ClusterStatus {
  clusterId: string
  leader: string | null
  term: number
  nodes: { total: number, healthy: number, suspected: number, failed: number }
}

export interface ClusterNode {
  id: string
  name: string
  addrs: string[]
  region: string
  health: 'healthy' | 'suspected' | 'failed'
  voter: boolean
}

/** `cluster.status`: the cluster as this node sees it; `cluster.nodes`: its members. */
export function clusterMethods (init: { nodeId: string, metadata: MetadataService }): RpcMethod[] {
  return [
    {
      name: 'cluster.status',
      action: Action.ClusterRead,
      kind: 'unary',
      params: (raw) => record(raw ?? {}, 'cluster.status'),
      handle: async ({ signal }): Promise<ClusterStatus> => {
        const { cluster, members } = await init.metadata.read((view) => ({ cluster: view.cluster(), members: view.members() }), { signal })
        const status = init.metadata.status()
        // one node: it is the only member and it is serving this request; membership and the failure
        // detector (next milestone) fill in the others
        const total = members.length
        const healthy = members.filter((m) => m.id === init.nodeId).length
        return {
          clusterId: cluster?.clusterId ?? '',
          leader: status.leader ?? null,
          term: status.term,
          nodes: { total, healthy, suspected: 0, failed: total - healthy }
        }
      }
    },
    {
      name: 'cluster.nodes',
      action: Action.ClusterRead,
      kind: 'unary',
      params: (raw) => record(raw ?? {}, 'cluster.nodes'),
      handle: async ({ signal }): Promise<{ nodes: ClusterNode[] }> => {
        const members = await init.metadata.read((view) => view.members(), { signal })
        // one node: itself, serving this request, is the only voter; the failure detector and Raft
        // membership (next milestone) report the others
        return {
          nodes: members.map((m) => ({
            id: m.id,
            name: m.name,
            addrs: m.addrs,
            region: m.region,
            health: m.id === init.nodeId ? 'healthy' : 'failed',
            voter: m.id === init.nodeId
          }))
        }
      }
    },
    {
      name: 'cluster.token.create',
      action: Action.ClusterAdmin,
      kind: 'unary',
      params: (raw) => {
        const p = record(raw ?? {}, 'cluster.token.create')
        return { ttlMs: integer(p, 'ttlMs', { min: 1000, max: JOIN_TOKEN_TTL_MS_MAX, optional: true }) ?? JOIN_TOKEN_TTL_MS_DEFAULT }
      },
      handle: async ({ peer, params, signal }) => {
        const { token, record: rec } = mintJoinToken(peer, params.ttlMs, Date.now())
        await init.metadata.propose({ type: 'CreateJoinToken', token: rec }, { signal })
        return { token, id: rec.id, expiresAtMs: rec.expiresAtMs }
      }
    },
    {
      name: 'node.info',
      action: Action.ClusterRead,
      kind: 'unary',
      params: (raw) => record(raw ?? {}, 'node.info'),
      handle: async ({ peer }) => ({ id: init.nodeId, peer })
    }
  ]
}
