import { createHash } from 'node:crypto'
import type { EncodedExtent } from './codec.js'
import type { Checksum, ExtentEncoding, ExtentStore } from './extent-store.js'
import type { ExtentRecord, MetadataService, PeerIdString } from './metadata.js'
import type { CallOptions, Logger } from './options.js'
import type { ReplicationEvent } from './events.js'
import type { PlacementNode, PlacementPolicy } from './placement.js'
import type { RebalanceMove, RebalancePolicy } from './rebalance.js'

/**
 * Replication: where an extent's copies go, how they are written and read, and how the cluster keeps
 * RF good copies of every extent while nodes fail, rot, join and leave.
 *
 * The core provides the transport (`ExtentPeers`: node-to-node extent RPCs), the cluster's state
 * (`ClusterView`: members with their health and fill) and the metadata; a replication plugin decides
 * what to do with them. Policies (placement, rebalancing) are plugins of their own, selected by cluster
 * configuration.
 */

/** How many acknowledgements a write waits for: a majority of the replicas placed, or every one. */
export type WriteSync = 'quorum' | 'all'

/** Default time a member may be Failed before its copies are re-created elsewhere. */
export const REPAIR_DELAY_MS_DEFAULT = 10 * 60_000

/** Checksum of extent bytes in the form every dfs store records (`sha256:<hex>`). */
export function extentChecksum (bytes: Uint8Array): Checksum {
  return 'sha256:' + createHash('sha256').update(bytes).digest('hex')
}

/** Extents this large are hashed off the event loop by `extentChecksumAsync`. */
const HASH_OFF_LOOP_BYTES_MIN = 256 * 1024

/**
 * `extentChecksum` without blocking the event loop for large extents (WebCrypto hashes in libuv's
 * thread pool): hashing 4 MiB takes ~4 ms of CPU, which a node serving a stream of puts would
 * otherwise spend instead of receiving the next one, and which runs beside other work on another core.
 */
export async function extentChecksumAsync (bytes: Uint8Array): Promise<Checksum> {
  if (bytes.byteLength < HASH_OFF_LOOP_BYTES_MIN) return extentChecksum(bytes)
  const digest = await globalThis.crypto.subtle.digest('SHA-256', bytes)
  return 'sha256:' + Buffer.from(digest).toString('hex')
}

/** A member as replication sees it: placement's view plus how long it has been Failed. */
export interface ClusterNode extends PlacementNode {
  /** Milliseconds since the failure detector moved the node to Failed (0 unless `health` is failed). */
  failedForMs: number
}

/** The cluster as this node sees it now (failure detector, heartbeats, metadata's member list). */
export interface ClusterView {
  /** Every member, this node included. */
  nodes: () => ClusterNode[]
}

/** The extent as a replica is asked to store it. */
export interface ExtentIdentity {
  id: string
  size: number
  checksum: Checksum
}

/** Node-to-node extent operations; `peer` may be this node (then the local store serves). */
export interface ExtentPeers {
  /**
   * Stores `bytes` as extent `extent.id` on `peer`. The caller computed `extent.checksum` from these
   * very bytes (their logical form) and, with a codec, checked that they decode to them: the peer
   * checks their length and stores them without decoding or hashing them again (they reached it over
   * the authenticated channel from a member; see extentWriteMethods), and fsyncs before it answers; an existing identical copy is success. Throws CorruptExtent when
   * the size does not match, NodeUnreachable/DeadlineExceeded when the peer does not answer. With `extent.codec`,
   * `bytes` are the logical bytes encoded with it (`storedSize` long) and travel and are stored so;
   * a peer that does not know codecs refuses such a put (InvalidArgument), it never stores them raw.
   */
  put: (peer: PeerIdString, extent: ExtentIdentity & ExtentEncoding, bytes: Uint8Array, options?: CallOptions) => Promise<void>
  /**
   * Makes `peer` hold a good copy of `extent`: a peer whose copy verifies does nothing; otherwise it
   * fetches the bytes from `sources` (in order, each verified) and stores them. Bytes travel from a
   * source to the peer directly.
   */
  replicate: (peer: PeerIdString, extent: ExtentRecord, sources: PeerIdString[], options?: CallOptions) => Promise<void>
  /** Deletes `peer`'s copy (none is success). */
  delete: (peer: PeerIdString, id: string, options?: CallOptions) => Promise<void>
  /**
   * Reads a verified copy, trying `order` in turn (default: the local copy, then `extent.replicas`).
   * Throws the typed error of the last attempt when none succeeds, with every attempt in `details`.
   */
  read: (extent: ExtentRecord, options?: CallOptions & { order?: PeerIdString[] }) => Promise<Uint8Array>
}

/** What a node gives the replication service it builds. */
export interface ReplicationServiceInit {
  nodeId: PeerIdString
  logger: Logger
  store: ExtentStore
  metadata: MetadataService
  cluster: ClusterView
  peers: ExtentPeers
  /** The placement policy a cluster configuration names (UnknownService if none is installed by that name). */
  placement: (name: string) => PlacementPolicy
  /** The rebalance policy a cluster configuration names. */
  rebalance: (name: string) => RebalancePolicy
  /** How long a member stays Failed before its copies are re-created elsewhere. */
  repairDelayMs?: number
  /**
   * How long the copies of a freed extent stay before their holders delete them (a reader on another
   * node may still be streaming the version that named it).
   */
  releaseGraceMs?: number
  /** Rebalance and drain moves copy at most this many bytes per second (cluster-wide: one coordinator). */
  moveBytesPerSecond?: number
  /**
   * Hears what the service does, as it happens (repairs, moves, scrub findings): the node's event log
   * and metrics. Optional for a service to call; it must not throw, and the service never waits on it.
   */
  onEvent?: (event: ReplicationEvent) => void
}

export interface RebalanceOptions extends CallOptions {
  /** Plan only: record nothing. */
  dryRun?: boolean
  /** Resolve once every recorded move has finished (or the signal aborts). */
  wait?: boolean
}

/** `dfs cluster rebalance --json`. */
export interface RebalanceResult {
  /** Moves recorded (with dryRun: moves the plan holds). */
  planned: number
  /** Of those, moves whose replica switch is done. */
  completed: number
  moves: RebalanceMove[]
}

/** `dfs cluster drain NODE --json`. */
export interface DrainResult extends RebalanceResult {
  node: PeerIdString
  /** Extents that still list a copy on the node (0: it can be removed). */
  remaining: number
}

/** `dfs cluster drain NODE --cancel --json`. */
export interface UndrainResult {
  node: PeerIdString
  /** Moves off the node that were still recorded and are now cancelled (moves already switched stay done). */
  cancelled: number
}

/** Where a set of recorded moves stands. */
export interface MoveProgress {
  /** Replica switched: the copy is on `to` and no longer listed on `from`. */
  completed: number
  /** Still recorded in metadata, waiting for or under way in the coordinator's executor. */
  pending: number
}

export interface ReplicatedWriteOptions extends CallOptions {
  sync?: WriteSync
  /**
   * The bytes as a client sent them encoded, which the caller decoded to exactly the bytes written
   * (so the encoding is proven): when the cluster's compression setting is their codec, the copies
   * are sent and stored in this form instead of compressing the bytes again. A policy may ignore it.
   */
  encoded?: EncodedExtent
}

/** An extent whose bytes are durable on a write quorum. `replicas` lists only copies that acknowledged. */
export interface ReplicatedWrite {
  extent: ExtentRecord
  /** Nodes placed but not acknowledged: repair completes them in the background. */
  missing: PeerIdString[]
}

/** `dfs cluster replication --json`. */
export interface ReplicationStatus {
  replicationFactor: number
  /** Extents metadata knows. */
  extents: number
  /** Extents with fewer live copies than the replication factor (live: on a member not Failed past the repair delay). */
  underReplicated: number
  /** Extents with no live copy at all (unreadable until a node returns). */
  missing: number
  /** Copies being made now by this cluster's repair coordinator. */
  repairing: number
  /** On the repair coordinator: extents its current repair pass still has to repair (0 between passes; absent: not reported). */
  repairQueued?: number
  /** Extents with a recorded move (rebalance or drain) not yet switched (absent: not reported). */
  movesRecorded?: number
  /** On the coordinator: moves it is executing now (absent: not reported). */
  movesInFlight?: number
}

export interface ReplicationService {
  start: () => Promise<void>
  stop: () => Promise<void>
  /**
   * Places an extent (RF distinct nodes by the cluster's placement policy), writes every copy in
   * parallel and resolves once a write quorum has fsync'd it. Throws NoQuorum when fewer than a
   * quorum acknowledged (nothing is recorded then; the copies written are garbage), Unavailable when
   * no node can take a copy at all.
   */
  write: (id: string, bytes: Uint8Array, options?: ReplicatedWriteOptions) => Promise<ReplicatedWrite>
  /**
   * `true`: a `write` given `encoded` reads `bytes` only until its promise settles (copies to
   * replicas still being cut off use `encoded`, or a copy of `bytes`), so the caller may fill them
   * again at once. A service without it keeps no such promise, and callers do not reuse `bytes`.
   */
  readonly encodedWritesReleaseBytes?: boolean
  /**
   * For an extent whose bytes may travel inside its file's commit (MetadataService.inlineVoters):
   * the replicas the placement policy gives it, when they are exactly `voters` and include this
   * node (which stores its own copy before it answers); otherwise undefined, and the extent is
   * written with `write`.
   */
  placeInline?: (id: string, size: number, voters: PeerIdString[]) => PeerIdString[] | undefined
  /** Reads a verified copy: local first, then healthy replicas nearest first; a corrupt copy is rewritten from a good one. */
  read: (extent: ExtentRecord, options?: CallOptions) => Promise<Uint8Array>
  /**
   * Deletes the copies on OTHER nodes of extents metadata no longer references (a file replaced or
   * removed), in the background after a grace period so readers elsewhere finish. This node's own
   * copy is the caller's to free (after its local readers let go). Never throws.
   */
  release: (extents: ExtentRecord[]) => void
  /** Replication state of the whole cluster, from linearizable metadata and this node's view of health. */
  status: (options?: CallOptions) => Promise<ReplicationStatus>
  /**
   * Plans moves with the cluster's rebalance policy and records each as an intent in metadata
   * (StartMove); the coordinator executes intents in two phases (copy and verify on the target,
   * switch the replica set, delete the source), resuming them after any crash. Any node may call it.
   */
  rebalance: (options?: RebalanceOptions) => Promise<RebalanceResult>
  /**
   * Marks `node` draining (placement gives it no new copies) and records a move for every copy it
   * holds, to a target the placement policy picks. Calling it again plans moves for copies left
   * without one (a target that became unfit is cancelled). With `wait`, resolves once no extent lists
   * the node. NotFound if the node is not a member.
   */
  drain: (node: PeerIdString, options?: Omit<RebalanceOptions, 'dryRun'>) => Promise<DrainResult>
  /**
   * Stops draining `node`: it takes new copies again, and every move off it still recorded is
   * cancelled (copies already moved stay where they are). NotFound if the node is not a member.
   */
  undrain: (node: PeerIdString, options?: CallOptions) => Promise<UndrainResult>
  /** How far the given moves have got (from linearizable metadata). */
  moveProgress: (moves: ReadonlyArray<Omit<RebalanceMove, 'bytes'>>, options?: CallOptions) => Promise<MoveProgress>
}

export type ReplicationServiceFactory = (init: ReplicationServiceInit) => ReplicationService
