import { Action } from '../../security/index.js'
import {
  JOIN_TOKEN_TTL_MS_DEFAULT, JOIN_TOKEN_TTL_MS_MAX, JOIN_TOKEN_TTL_MS_MIN, JOIN_TOKEN_USES_DEFAULT, JOIN_TOKEN_USES_MAX, mintJoinToken, parseJoinToken, verifyJoinToken
} from '../../security/join-token.js'
import { clusterPin, proveCluster, requireNonce } from '../../security/cluster-key.js'
import { peerIdFromString } from '@libp2p/peer-id'
import { integer, name, record, text } from './params.js'
import { validateMemberAddrs } from '../../net/member-addrs.js'
import { logger } from '@libp2p/logger'
import { Deadline, InvalidArgumentError, NODE_NAME_BYTES_MAX, NotFoundError, REBALANCE_MOVES_LIMIT, UnavailableError, UnknownServiceError } from '@dfs/api'
import type {
  ClusterKey, ClusterNodeInfo, ClusterNodesResult, ClusterRecord, ClusterShards, MetadataView, ClusterStatus, MemberRecord, MetadataService, PolicySelection, ReplicationService, ReplicationStatus, RpcParams, RpcResult, UnaryMethodName
} from '@dfs/api'
import { defineMethod } from '../../net/rpc/define-method.js'
import type { RpcMethod } from '../../net/rpc/types.js'

const log = logger('dfs:node:cluster')

/** The shard map as this node last applied it (an unsharded service: one group holds every shard). */
export function shardMap (nodeId: string, metadata: MetadataService): ClusterShards {
  const st = metadata.status()
  const { shardCount, groups } = metadata.groups?.() ?? {
    shardCount: SHARD_COUNT_UNSHARDED,
    groups: [{ group: 0, kind: 'all', shards: Array.from({ length: SHARD_COUNT_UNSHARDED }, (_, i) => i), voters: [nodeId], learners: [], leader: st.leader ?? nodeId, term: st.term }]
  }
  const shards: ClusterShards['shards'] = []
  for (const g of groups) {
    for (const shard of g.shards) {
      shards.push({ shard, group: g.group, replicas: [...g.voters, ...g.learners].sort(), voters: g.voters, leader: g.leader ?? null })
    }
  }
  shards.sort((a, b) => a.shard - b.shard)
  return { shardCount, groups: groups.map((g) => ({ ...g, leader: g.leader ?? null })), shards }
}

/** The member `node` names: a PeerId, or a name that only one member has. */
function memberNamed (members: MemberRecord[], node: string): MemberRecord {
  const byId = members.find((m) => m.id === node)
  const byName = members.filter((m) => m.name === node)
  if (byId == null && byName.length > 1) {
    throw new InvalidArgumentError(`${byName.length} members are named ${node}: give the PeerId`, { node, ids: byName.map((m) => m.id) })
  }
  const member = byId ?? byName[0]
  if (member == null) throw new NotFoundError(`no member ${node}`, { node })
  return member
}

function replicationOf (init: ClusterMethodsInit): ReplicationService {
  if (init.replication == null) throw new UnavailableError('this node runs no replication service')
  return init.replication
}

/** A PeerId a caller names (InvalidArgument when it is not one). */
function peerId (value: string, key: string): string {
  try {
    return peerIdFromString(value).toString()
  } catch {
    throw new InvalidArgumentError(`${key} is not a PeerId`, { key })
  }
}

/** An optional boolean parameter (absent: false). */
function flag (params: Record<string, unknown>, key: string): boolean {
  const v = params[key]
  if (v === undefined) return false
  if (typeof v !== 'boolean') throw new InvalidArgumentError(`${key} must be true or false`, { field: key })
  return v
}

/** What an unsharded metadata service reports: the same key space, all in one group. */
const SHARD_COUNT_UNSHARDED = 256

/** `cluster.status`: the cluster as this node sees it; `cluster.nodes`: its members. */
export interface ClusterMethodsInit {
  nodeId: string
  metadata: MetadataService
  health: (member: string) => 'healthy' | 'suspected' | 'failed'
  /** A member's bytes stored and capacity as its last heartbeat reported them (capacity null: none yet). */
  usage?: (member: string) => { usedBytes: number, capacityBytes: number | null }
  replication?: ReplicationService
  /** The policies of a kind this node has installed. */
  policies?: (kind: 'placement' | 'rebalance') => string[]
  /** Calls `method` on another member (as this node), e.g. to ask the repair coordinator what it is doing. */
  askPeer?: <M extends UnaryMethodName>(peer: string, method: M, params: RpcParams<M>, signal: AbortSignal) => Promise<RpcResult<M>>
  /** This node runs with the test fault hook on (reported by `cluster.status`). */
  testFaults?: boolean
}

/** How long `cluster.replication` waits for the repair coordinator's own figure. */
const COORDINATOR_ASK_TIMEOUT_MS = 2000

/** Settings `dfs cluster config set` takes, by their command-line names. */
const CONFIG_KEYS = {
  'replication-factor': { key: 'replicationFactor', numeric: true },
  'imbalance-threshold': { key: 'imbalanceThreshold', numeric: true },
  'fill-limit': { key: 'fillLimit', numeric: true },
  'audit-retention': { key: 'auditRetention', numeric: true },
  'user-request-rate': { key: 'userRequestRate', numeric: true },
  compression: { key: 'compression', numeric: false }
} as const

/** Policy kinds `dfs cluster policy set` selects, and the setting each one names. */
const POLICY_SETTINGS = { placement: 'placementPolicy', rebalance: 'rebalancePolicy' } as const

/** `cluster.nodes` of `members`: each with its health, standing and usage as this node knows them. */
export function nodeInfos (init: ClusterMethodsInit, members: MemberRecord[]): ClusterNodeInfo[] {
  const voting = new Set(init.metadata.membership?.members().voters ?? members.slice(0, 1).map((m) => m.id))
  return members.map((m) => ({
    id: m.id,
    name: m.name,
    addrs: m.addrs,
    region: m.region,
    health: init.health(m.id),
    voter: voting.has(m.id),
    draining: m.draining === true,
    ...(init.usage?.(m.id) ?? { usedBytes: 0, capacityBytes: null })
  }))
}

/**
 * `cluster.replication`: the replication service's status, with `repairing` as the repair
 * coordinator (the system group's leader) says unless `here`. Unavailable without a service.
 */
export async function replicationStatus (init: ClusterMethodsInit, here: boolean, signal: AbortSignal): Promise<ReplicationStatus> {
  if (init.replication == null) throw new UnavailableError('this node runs no replication service')
  const status = await init.replication.status({ signal })
  // copies being made are known to the repair coordinator (the system group's leader) only
  const coordinator = init.metadata.status().leader
  if (!here && coordinator !== undefined && coordinator !== init.nodeId && init.askPeer != null) {
    const ask = new Deadline(COORDINATOR_ASK_TIMEOUT_MS, signal)
    try {
      // as a member (node.peer): a member's key is not a user and may not call cluster.* methods
      const theirs = await init.askPeer(coordinator, 'node.replication', {}, ask.signal)
      status.repairing = theirs.repairing
      // the coordinator's own repair queue and moves in flight (absent from an older node's answer)
      if (theirs.repairQueued !== undefined) status.repairQueued = theirs.repairQueued
      if (theirs.movesInFlight !== undefined) status.movesInFlight = theirs.movesInFlight
    } catch (err) {
      log('cluster.replication: the coordinator %s did not say what it repairs: %s', coordinator, (err as Error).message)
    } finally {
      ask.clear()
    }
  }
  return status
}

export function clusterMethods (init: ClusterMethodsInit): RpcMethod[] {
  return [
    defineMethod('cluster.status', {
      action: Action.ClusterRead,
      kind: 'unary',
      params: (raw) => record(raw ?? {}, 'cluster.status'),
      handle: async ({ signal }): Promise<ClusterStatus> => {
        const { cluster, members } = await init.metadata.read((view) => ({ cluster: view.cluster(), members: view.members() }), { signal, scope: { system: true } })
        const status = init.metadata.status()
        const health = members.map((m) => init.health(m.id))
        return {
          clusterId: cluster?.clusterId ?? '',
          leader: status.leader ?? null,
          term: status.term,
          nodes: {
            total: members.length,
            healthy: health.filter((h) => h === 'healthy').length,
            suspected: health.filter((h) => h === 'suspected').length,
            failed: health.filter((h) => h === 'failed').length
          },
          testFaults: init.testFaults === true
        }
      }
    }),
    defineMethod('cluster.nodes', {
      action: Action.ClusterRead,
      kind: 'unary',
      params: (raw) => record(raw ?? {}, 'cluster.nodes'),
      handle: async ({ signal }): Promise<ClusterNodesResult> => {
        const members = await init.metadata.read((view) => view.members(), { signal, scope: { system: true } })
        return { nodes: nodeInfos(init, members) }
      }
    }),
    defineMethod('cluster.shards', {
      action: Action.ClusterRead,
      kind: 'unary',
      params: (raw) => record(raw ?? {}, 'cluster.shards'),
      handle: async () => shardMap(init.nodeId, init.metadata)
    }),
    defineMethod('cluster.replication', {
      action: Action.ClusterRead,
      kind: 'unary',
      params: (raw) => ({ here: flag(record(raw ?? {}, 'cluster.replication'), 'here') }),
      handle: async ({ params, signal }) => await replicationStatus(init, params.here, signal)
    }),
    defineMethod('cluster.config', {
      action: Action.ClusterRead,
      kind: 'unary',
      params: (raw) => record(raw ?? {}, 'cluster.config'),
      handle: async ({ signal }) => await init.metadata.read((view) => view.config(), { signal, scope: { system: true } })
    }),
    defineMethod('cluster.config.set', {
      action: Action.ClusterAdmin,
      kind: 'unary',
      params: (raw) => {
        const p = record(raw, 'cluster.config.set')
        const key = text(p, 'key', { max: 64 })
        const setting = CONFIG_KEYS[key as keyof typeof CONFIG_KEYS]
        if (setting === undefined) {
          throw new InvalidArgumentError(`unknown setting ${JSON.stringify(key)} (settings: ${Object.keys(CONFIG_KEYS).join(', ')})`, { key })
        }
        const raw2 = text(p, 'value', { max: 64 })
        const value = setting.numeric ? Number(raw2) : raw2
        if (setting.numeric && (raw2.trim() === '' || !Number.isFinite(value))) throw new InvalidArgumentError(`${key} takes a number`, { key, value: raw2 })
        return { key: setting.key, value }
      },
      // the state machine validates the value (range, policy name) and refuses a bad one
      handle: async ({ params, signal }) => {
        await init.metadata.propose({ type: 'SetConfig', key: params.key, value: params.value }, { signal })
        return await init.metadata.read((view) => view.config(), { signal, scope: { system: true } })
      }
    }),
    defineMethod('cluster.policy.set', {
      action: Action.ClusterAdmin,
      kind: 'unary',
      params: (raw): PolicySelection => {
        const p = record(raw, 'cluster.policy.set')
        const kind = text(p, 'kind', { max: 16 })
        if (kind !== 'placement' && kind !== 'rebalance') throw new InvalidArgumentError('kind must be placement or rebalance', { kind })
        return { kind, name: text(p, 'name', { max: 64 }) }
      },
      handle: async ({ params, signal }) => {
        // refuse a policy this node cannot run rather than leave the cluster placing with nothing
        const installed = init.policies?.(params.kind) ?? []
        if (!installed.includes(params.name)) {
          throw new UnknownServiceError(`no ${params.kind} policy named ${JSON.stringify(params.name)} is installed on this node` +
            ` (installed: ${installed.join(', ') || 'none'})`, { kind: params.kind, name: params.name, known: installed })
        }
        await init.metadata.propose({ type: 'SetConfig', key: POLICY_SETTINGS[params.kind], value: params.name }, { signal })
        return { kind: params.kind, name: params.name }
      }
    }),
    defineMethod('cluster.rebalance', {
      action: Action.ClusterAdmin,
      kind: 'unary',
      params: (raw) => {
        const p = record(raw ?? {}, 'cluster.rebalance')
        return { dryRun: flag(p, 'dryRun'), wait: flag(p, 'wait') }
      },
      handle: async ({ params, signal }) => {
        return await replicationOf(init).rebalance({ ...params, signal })
      }
    }),
    defineMethod('cluster.rebalance.progress', {
      action: Action.ClusterRead,
      kind: 'unary',
      params: (raw) => {
        const p = record(raw, 'cluster.rebalance.progress')
        const moves = p.moves
        if (!Array.isArray(moves) || moves.length > REBALANCE_MOVES_LIMIT) {
          throw new InvalidArgumentError(`moves must be a list of at most ${REBALANCE_MOVES_LIMIT} moves`)
        }
        return {
          moves: moves.map((m, i) => {
            const r = record(m, `moves[${i}]`)
            return { extent: text(r, 'extent', { max: 64 }), from: text(r, 'from', { max: 255 }), to: text(r, 'to', { max: 255 }) }
          })
        }
      },
      handle: async ({ params, signal }) => {
        return await replicationOf(init).moveProgress(params.moves, { signal })
      }
    }),
    defineMethod('cluster.drain', {
      action: Action.ClusterAdmin,
      kind: 'unary',
      params: (raw) => {
        const p = record(raw, 'cluster.drain')
        return { node: text(p, 'node', { max: 255 }), wait: flag(p, 'wait') }
      },
      handle: async ({ params, signal }) => {
        const members = await init.metadata.read((view) => view.members(), { signal, scope: { system: true } })
        const member = memberNamed(members, params.node)
        return { name: member.name, ...await replicationOf(init).drain(member.id, { wait: params.wait, signal }) }
      }
    }),
    defineMethod('cluster.undrain', {
      action: Action.ClusterAdmin,
      kind: 'unary',
      params: (raw) => ({ node: text(record(raw, 'cluster.undrain'), 'node', { max: 255 }) }),
      handle: async ({ params, signal }) => {
        const members = await init.metadata.read((view) => view.members(), { signal, scope: { system: true } })
        const member = memberNamed(members, params.node)
        return { name: member.name, ...await replicationOf(init).undrain(member.id, { signal }) }
      }
    }),
    defineMethod('cluster.token.create', {
      action: Action.ClusterAdmin,
      kind: 'unary',
      params: (raw) => {
        const p = record(raw ?? {}, 'cluster.token.create')
        const forPeer = text(p, 'forPeer', { max: 128, optional: true })
        if (forPeer !== undefined) peerId(forPeer, 'forPeer')
        return {
          ttlMs: integer(p, 'ttlMs', { min: JOIN_TOKEN_TTL_MS_MIN, max: JOIN_TOKEN_TTL_MS_MAX, optional: true }) ?? JOIN_TOKEN_TTL_MS_DEFAULT,
          uses: integer(p, 'uses', { min: 1, max: JOIN_TOKEN_USES_MAX, optional: true }) ?? JOIN_TOKEN_USES_DEFAULT,
          forPeer
        }
      },
      handle: async ({ peer, params, signal }) => {
        // a token names the cluster by its key's pin, once the cluster has a key (see ensureClusterKey)
        const publicKey = await init.metadata.read((view) => view.cluster()?.publicKey, { signal, scope: { system: true } })
        const pin = publicKey !== undefined ? clusterPin(publicKey) : undefined
        const { token, record: rec } = mintJoinToken(peer, { ttlMs: params.ttlMs, uses: params.uses, forPeer: params.forPeer, pin }, Date.now())
        await init.metadata.propose({ type: 'CreateJoinToken', token: rec }, { signal })
        return { token, id: rec.id, expiresAtMs: rec.expiresAtMs, uses: params.uses }
      }
    }),
    defineMethod('cluster.token.list', {
      action: Action.ClusterAdmin,
      kind: 'unary',
      params: (raw) => record(raw ?? {}, 'cluster.token.list'),
      handle: async ({ signal }) => {
        const now = Date.now()
        const tokens = await init.metadata.read((view) => view.joinTokens(), { signal, scope: { system: true } })
        // expired records linger until the next token is created: they are not live
        return {
          tokens: tokens.filter((t) => t.expiresAtMs > now).map((t) => ({
            id: t.id, expiresAtMs: t.expiresAtMs, usesLeft: t.usesLeft ?? null, forPeer: t.forPeer ?? null, createdBy: t.createdBy
          }))
        }
      }
    }),
    defineMethod('cluster.token.revoke', {
      action: Action.ClusterAdmin,
      kind: 'unary',
      params: (raw) => {
        const id = text(record(raw, 'cluster.token.revoke'), 'id', { max: 64 })
        if (!/^[0-9a-f]{16}$/.test(id)) throw new InvalidArgumentError('a join token id is 16 hex digits (see dfs cluster token list)', { id: id.slice(0, 64) })
        return { id }
      },
      handle: async ({ params, signal }) => {
        await init.metadata.propose({ type: 'RevokeJoinToken', id: params.id }, { signal })
        return { id: params.id }
      }
    }),
    defineMethod('cluster.identify', {
      action: Action.ClusterJoin,
      kind: 'unary',
      params: (raw) => ({ nonce: requireNonce(record(raw, 'cluster.identify').nonce) }),
      handle: async ({ peer, params, signal }) => {
        // open to strangers: this node's applied state answers (no quorum read); the key never changes once set
        const read = (view: MetadataView): { cluster: ClusterRecord | undefined, key: ClusterKey | undefined } => ({ cluster: view.cluster(), key: view.clusterKey() })
        const { cluster, key } = init.metadata.staleRead != null
          ? init.metadata.staleRead(read)
          : await init.metadata.read(read, { signal, scope: { system: true } })
        if (cluster == null || key == null) throw new UnavailableError('this node knows no cluster key yet: try again shortly')
        return proveCluster(key, { clusterId: cluster.clusterId, nonce: params.nonce, caller: peer, server: init.nodeId })
      }
    }),
    defineMethod('cluster.join', {
      action: Action.ClusterJoin,
      kind: 'unary',
      params: (raw) => {
        const p = record(raw, 'cluster.join')
        // the token's form first: garbage is refused before anything else is read
        parseJoinToken(p.token)
        return {
          token: p.token as string,
          name: name(p, 'name', { bytesMax: NODE_NAME_BYTES_MAX }),
          region: name(p, 'region', { bytesMax: NODE_NAME_BYTES_MAX }),
          // parsed and bounded before anything is stored: every member parses these addresses
          addrs: validateMemberAddrs(p.addrs)
        }
      },
      handle: async ({ peer, params, signal }) => {
        const membership = init.metadata.membership
        if (membership == null) {
          throw new UnavailableError('this node keeps its metadata without consensus (--metadata local) and cannot admit members')
        }
        // the secret is checked (in constant time) against committed metadata, at this node's time;
        // then one use is spent atomically: of two nodes racing for a token's last use, one is refused
        // an address that names another peer is refused before anything is read or spent
        const addrs = validateMemberAddrs(params.addrs, { peer })
        const now = Date.now()
        const token = await init.metadata.read((view) => verifyJoinToken(view, params.token, now, peer), { signal, scope: { system: true } })
        await init.metadata.propose({ type: 'UseJoinToken', id: token.id, peer, nowMs: now }, { signal })
        await init.metadata.propose({ type: 'PutMember', member: { id: peer, name: params.name, region: params.region, addrs } }, { signal })
        await membership.addLearner(peer, { signal })
        const { cluster, members } = await init.metadata.read((view) => ({ cluster: view.cluster(), members: view.members() }), { signal, scope: { system: true } })
        return { clusterId: cluster?.clusterId ?? '', members: members.map((m) => ({ id: m.id, addrs: m.addrs })) }
      }
    }),
    defineMethod('cluster.nodes.remove', {
      action: Action.ClusterAdmin,
      kind: 'unary',
      params: (raw) => ({ node: text(record(raw, 'cluster.nodes.remove'), 'node', { max: 255 }) }),
      handle: async ({ params, signal }) => {
        const membership = init.metadata.membership
        if (membership == null) throw new UnavailableError('this node keeps its metadata without consensus (--metadata local): there are no other members')
        const members = await init.metadata.read((view) => view.members(), { signal, scope: { system: true } })
        const member = memberNamed(members, params.node)
        const { voters, learners } = membership.members()
        if (voters.length === 1 && voters[0] === member.id && learners.length === 0) {
          throw new InvalidArgumentError('the last member cannot be removed', { node: member.id })
        }
        // first out of the consensus group (so it no longer counts towards quorums), then out of the member list
        if (voters.includes(member.id) || learners.includes(member.id)) await membership.remove(member.id, { signal })
        await init.metadata.propose({ type: 'RemoveMember', id: member.id }, { signal })
        return { id: member.id, name: member.name }
      }
    }),
    defineMethod('node.replication', {
      action: Action.NodePeer,
      kind: 'unary',
      params: (raw) => record(raw ?? {}, 'node.replication'),
      handle: async ({ signal }) => await replicationOf(init).status({ signal })
    }),
    defineMethod('node.info', {
      action: Action.ClusterRead,
      kind: 'unary',
      params: (raw) => record(raw ?? {}, 'node.info'),
      handle: async ({ peer }) => ({ id: init.nodeId, peer })
    })
  ]
}
