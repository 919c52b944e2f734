import { InvalidArgumentError } from './errors.js'
import type { PeerIdString } from './metadata.js'
import type { Logger } from './options.js'

/** Default number of copies of every extent (a cluster setting). */
export const REPLICATION_FACTOR_DEFAULT = 3

/** Most copies a cluster may ask for: dfs is built for clusters of 1 to 7 nodes. */
export const REPLICATION_FACTOR_MAX = 16

/** What the failure detector says of a member; only `healthy` nodes receive new copies. */
export type NodeHealth = 'healthy' | 'suspected' | 'failed'

/** A member as placement and rebalancing see it: where it is, whether it is up, how full it is. */
export interface PlacementNode {
  /** PeerId of the node. */
  id: PeerIdString
  /** Region or failure domain (`dfs node start --region`); copies are spread over distinct regions. */
  region: string
  /** The failure detector's view; a `suspected` or `failed` node never receives a copy. */
  health: NodeHealth
  /** Bytes the node's extent store holds now (from its latest heartbeat); a safe integer ≥ 0. */
  usedBytes: number
  /** Bytes the node may use for extents; a safe integer > 0 (a node that has not reported any is left out). */
  capacityBytes: number
  /**
   * Fraction of `capacityBytes` past which the node takes no new copy, in (0, 1]. A node may hold
   * `fillLimit × capacityBytes` bytes and no more, counting the copy being placed.
   */
  fillLimit: number
}

/** The extent being placed: a new one (no replicas) or one being repaired (its surviving copies). */
export interface PlacementExtent {
  /** Extent id (a UUID); policies use it to spread equal choices over equal nodes. */
  id: string
  /** Bytes of one copy; a safe integer ≥ 0. */
  size: number
  /**
   * Nodes holding a good copy that is kept, without duplicates; each must appear in `nodes` (in any
   * health). Copies that are lost or corrupt are not listed: the caller drops them first.
   */
  replicas: PeerIdString[]
}

/** One placement question: which nodes should receive the missing copies of `extent`. */
export interface PlacementRequest {
  extent: PlacementExtent
  /** Copies wanted in all, counting `extent.replicas`; an integer in [1, REPLICATION_FACTOR_MAX]. */
  replicationFactor: number
  /** Every member the cluster knows, with distinct ids. */
  nodes: PlacementNode[]
}

/**
 * Chooses where copies of an extent go.
 *
 * Contract (`placementPolicySuite` in `@dfs/api/testing` checks it for every policy):
 * - `place` returns the nodes that should receive the copies still missing, at most
 *   `replicationFactor − extent.replicas.length` of them (none if the extent has enough), distinct,
 *   none already a replica, most preferred first.
 * - It never returns a node that is not `healthy`, nor one without room (see `hasRoomFor`).
 * - It returns as many as it can: all the copies missing if there are that many eligible nodes, else
 *   every eligible node. The caller writes those copies and records the extent as under-replicated;
 *   repair asks again when nodes join.
 * - It is a pure function of the request: no clock, no randomness, no I/O, the same answer on every
 *   node and every run whatever the order of `nodes` (placement is decided once, by the metadata
 *   leader, and replayed from the log). It does not modify the request.
 * - Malformed requests throw InvalidArgument (see `checkPlacementRequest`) and nothing else happens.
 */
export interface PlacementPolicy {
  place: (request: PlacementRequest) => PeerIdString[]
}

/** What a policy implementation is given when a node builds it. */
export interface PolicyInit {
  logger: Logger
}

export type PlacementPolicyFactory = (init: PolicyInit) => PlacementPolicy

/** Fraction of its capacity a node has filled: the one measure of "used" both kinds of policy compare. */
export function fillFraction (node: PlacementNode): number {
  return node.usedBytes / node.capacityBytes
}

/** True if `node` is healthy and `bytes` more keep it within its fill limit. */
export function hasRoomFor (node: PlacementNode, bytes: number): boolean {
  return node.health === 'healthy' && node.usedBytes + bytes <= node.fillLimit * node.capacityBytes
}

const HEALTHS: ReadonlySet<string> = new Set<NodeHealth>(['healthy', 'suspected', 'failed'])

/**
 * Checks the node list shared by placement and rebalancing requests and returns the nodes by id.
 * Throws InvalidArgument naming the field at fault.
 */
export function checkPlacementNodes (nodes: unknown): Map<PeerIdString, PlacementNode> {
  if (!Array.isArray(nodes)) throw new InvalidArgumentError('nodes must be an array', { field: 'nodes' })
  const byId = new Map<PeerIdString, PlacementNode>()
  nodes.forEach((node: PlacementNode, i) => {
    const field = `nodes[${i}]`
    if (node == null || typeof node !== 'object') throw new InvalidArgumentError(`${field} must be an object`, { field })
    if (typeof node.id !== 'string' || node.id.length === 0) throw new InvalidArgumentError(`${field}.id must be a non-empty string`, { field: `${field}.id` })
    if (byId.has(node.id)) throw new InvalidArgumentError(`node ${node.id} is listed twice`, { field: `${field}.id`, node: node.id })
    if (typeof node.region !== 'string') throw new InvalidArgumentError(`${field}.region must be a string`, { field: `${field}.region` })
    if (!HEALTHS.has(node.health)) throw new InvalidArgumentError(`${field}.health must be healthy, suspected or failed`, { field: `${field}.health`, value: String(node.health) })
    if (!isCount(node.usedBytes)) throw new InvalidArgumentError(`${field}.usedBytes must be a safe integer ≥ 0`, { field: `${field}.usedBytes` })
    if (!isCount(node.capacityBytes) || node.capacityBytes === 0) throw new InvalidArgumentError(`${field}.capacityBytes must be a safe integer > 0`, { field: `${field}.capacityBytes` })
    if (typeof node.fillLimit !== 'number' || !(node.fillLimit > 0 && node.fillLimit <= 1)) {
      throw new InvalidArgumentError(`${field}.fillLimit must be a fraction in (0, 1]`, { field: `${field}.fillLimit`, value: node.fillLimit })
    }
    byId.set(node.id, node)
  })
  return byId
}

/**
 * Checks an extent's id, size and replicas against the known nodes. Shared by placement and
 * rebalancing; `field` names the extent in the error.
 */
export function checkPlacementExtent (extent: unknown, nodes: ReadonlyMap<PeerIdString, PlacementNode>, field = 'extent'): void {
  const e = extent as PlacementExtent
  if (e == null || typeof e !== 'object') throw new InvalidArgumentError(`${field} must be an object`, { field })
  if (typeof e.id !== 'string' || e.id.length === 0) throw new InvalidArgumentError(`${field}.id must be a non-empty string`, { field: `${field}.id` })
  if (!isCount(e.size)) throw new InvalidArgumentError(`${field}.size must be a safe integer ≥ 0`, { field: `${field}.size`, extent: e.id })
  if (!Array.isArray(e.replicas)) throw new InvalidArgumentError(`${field}.replicas must be an array`, { field: `${field}.replicas`, extent: e.id })
  const seen = new Set<string>()
  for (const replica of e.replicas) {
    if (seen.has(replica)) throw new InvalidArgumentError(`extent ${e.id} lists replica ${String(replica)} twice`, { field: `${field}.replicas`, extent: e.id, node: replica })
    if (!nodes.has(replica)) throw new InvalidArgumentError(`replica ${String(replica)} of extent ${e.id} is not among the nodes`, { field: `${field}.replicas`, extent: e.id, node: replica })
    seen.add(replica)
  }
}

/**
 * Checks a whole placement request; every policy calls it first, so bad input fails the same way
 * whichever policy is selected. Returns the nodes by id.
 */
export function checkPlacementRequest (request: PlacementRequest): Map<PeerIdString, PlacementNode> {
  if (request == null || typeof request !== 'object') throw new InvalidArgumentError('a placement request must be an object')
  const rf = request.replicationFactor
  if (!Number.isInteger(rf) || rf < 1 || rf > REPLICATION_FACTOR_MAX) {
    throw new InvalidArgumentError(`replicationFactor must be an integer from 1 to ${REPLICATION_FACTOR_MAX}`, { field: 'replicationFactor', value: rf })
  }
  const nodes = checkPlacementNodes(request.nodes)
  checkPlacementExtent(request.extent, nodes)
  return nodes
}

function isCount (n: unknown): n is number {
  return Number.isSafeInteger(n) && (n as number) >= 0
}
