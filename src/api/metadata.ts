import { InvalidArgumentError } from './errors.js'
import { COMPRESSION_DEFAULT, type CompressionSetting } from './codec.js'
import type { AuditCheckpoint, AuditEntry, AuditRecord } from './audit.js'
import type { Checksum } from './extent-store.js'
import type { CallOptions, Logger } from './options.js'
import type { PeerNetwork } from './network.js'

/** A PeerId in its string (base58btc) form. */
export type PeerIdString = string

export type Role = 'admin' | 'user' | 'readonly'

/**
 * A user: a PeerId granted a role, cluster-wide (`tenant` null) or within one tenant. A tenant's admin
 * manages its tenant's users and nothing else; the cluster keeps at least one cluster-wide admin.
 */
export interface UserRecord {
  id: PeerIdString
  role: Role
  tenant: string | null
}

/** A tenant (a namespace: see `tenants.ts`) and its limits; null: no limit (or the cluster's default rate). */
export interface TenantRecord {
  name: string
  /** Most logical bytes (sum of its files' sizes) the tenant may hold. */
  quotaBytes: number | null
  /** Most files the tenant may hold. */
  quotaFiles: number | null
  /** Requests per second each of its users may make on one node (null: the cluster's `userRequestRate`). */
  requestRate: number | null
}

/** A tenant with its exact usage (kept by the data group that owns the tenant's files). */
export interface TenantInfo extends TenantRecord {
  usedBytes: number
  usedFiles: number
}

/**
 * The cluster's own Ed25519 key pair, made at creation and held by every member (it is in metadata
 * only members replicate; no RPC returns the private half). A member proves the cluster's identity by
 * signing a challenge with it (`cluster.identify`); a join token pins the hash of the public half.
 */
export interface ClusterKey {
  /** base64url of the raw 32-byte public key. */
  publicKey: string
  /** base64url of the PKCS#8 DER private key. */
  privateKey: string
}

/** An extent as metadata knows it: its bytes' size and checksum and the nodes that hold a copy. */
export interface ExtentRecord {
  id: string
  size: number
  checksum: Checksum
  /** PeerIds of the nodes that hold (or are to hold) a copy, without duplicates. */
  replicas: PeerIdString[]
  /**
   * A rebalance or drain move recorded but not finished (StartMove): the copy on `from` is to be
   * copied to `to`, the replica set switched (MigrateExtent, which clears this), then `from` deleted.
   * Recorded in metadata so that whoever coordinates after a crash finishes it. Invariant:
   * `from` is in `replicas` and `to` is not.
   */
  move?: ExtentMove
}

export interface ExtentMove {
  from: PeerIdString
  to: PeerIdString
}

/** One version of a file. A put replaces the whole record atomically. */
export interface FileRecord {
  path: string
  size: number
  /** Modification time chosen by the proposer (apply never reads a clock). */
  mtimeMs: number
  /** Increases by one with every put of this path; 1 for the first. */
  version: number
  /** Extent ids in file order. */
  extents: string[]
  /** What the writer said about the content (absent: nothing); see requireFileMeta for the bounds. */
  meta?: FileMeta
}

/**
 * What a file's writer says about its content, kept with the file version and never looked at by
 * dfs itself (the S3 gateway answers with it). Replaced as a whole by every put; kept by a rename.
 */
export interface FileMeta {
  /** A MIME type as HTTP sends it: 1..FILE_CONTENT_TYPE_BYTES_MAX printable ASCII characters. */
  contentType?: string
  /** An entity tag, e.g. the hex MD5 of the bytes or an S3 multipart tag: 1..FILE_ETAG_LENGTH_MAX of `[0-9a-f-]`. */
  etag?: string
  /** User metadata (S3's `x-amz-meta-*`): keys FILE_USER_META_KEY_PATTERN, values without control characters. */
  user?: Record<string, string>
}

/** Longest content type. */
export const FILE_CONTENT_TYPE_BYTES_MAX = 256
/** Longest etag. */
export const FILE_ETAG_LENGTH_MAX = 128
/** Most bytes (UTF-8) of a file's user metadata keys and values together (S3 allows 2 KiB). */
export const FILE_USER_META_BYTES_MAX = 2048
/** Most user metadata entries of one file. */
export const FILE_USER_META_ENTRIES_MAX = 64
/** A user metadata key: lower-case, as HTTP headers are compared. */
export const FILE_USER_META_KEY_PATTERN = /^[a-z0-9][a-z0-9_.-]{0,127}$/
const CONTENT_TYPE_PATTERN = /^[\x20-\x7e]+$/
const ETAG_PATTERN = /^[0-9a-f-]+$/
const UTF8 = new TextEncoder()
/** Control characters (C0 and DEL) and lone surrogates (which no encoding keeps as they are). */
// eslint-disable-next-line no-control-regex -- the control characters are what it finds
const META_VALUE_REFUSED = /[\u0000-\u001f\u007f]|\p{Cs}/u

/**
 * Checks untrusted file metadata (an operation's or a caller's) and returns a fresh frozen copy with
 * only the known fields, or undefined when it sets nothing (`{}`, or an empty `user`): a file's
 * `meta` is present exactly when it says something. InvalidArgument names the field.
 */
export function requireFileMeta (value: unknown, what = 'meta'): FileMeta | undefined {
  if (value === undefined) return undefined
  if (typeof value !== 'object' || value === null || Array.isArray(value) || value instanceof Uint8Array) {
    throw new InvalidArgumentError(`${what} must be a map`, { field: what })
  }
  const obj = value as Record<string, unknown>
  const own = (k: string): unknown => Object.hasOwn(obj, k) ? obj[k] : undefined
  for (const k of Object.keys(obj)) {
    if (k !== 'contentType' && k !== 'etag' && k !== 'user') throw new InvalidArgumentError(`${what} has an unknown field`, { field: `${what}.${k.slice(0, 32)}` })
  }
  const out: FileMeta = {}
  const contentType = own('contentType')
  if (contentType !== undefined) {
    if (typeof contentType !== 'string' || contentType.length > FILE_CONTENT_TYPE_BYTES_MAX || !CONTENT_TYPE_PATTERN.test(contentType)) {
      throw new InvalidArgumentError(`${what}.contentType must be 1 to ${FILE_CONTENT_TYPE_BYTES_MAX} printable ASCII characters`, { field: `${what}.contentType` })
    }
    out.contentType = contentType
  }
  const etag = own('etag')
  if (etag !== undefined) {
    if (typeof etag !== 'string' || etag.length > FILE_ETAG_LENGTH_MAX || !ETAG_PATTERN.test(etag)) {
      throw new InvalidArgumentError(`${what}.etag must be 1 to ${FILE_ETAG_LENGTH_MAX} characters of [0-9a-f-]`, { field: `${what}.etag` })
    }
    out.etag = etag
  }
  const user = own('user')
  if (user !== undefined) {
    const checked = requireUserMeta(user, `${what}.user`)
    if (Object.keys(checked).length > 0) out.user = checked
  }
  if (out.user !== undefined) Object.freeze(out.user)
  return Object.keys(out).length === 0 ? undefined : Object.freeze(out)
}

/**
 * User metadata (FileMeta.user): at most FILE_USER_META_ENTRIES_MAX entries, keys matching
 * FILE_USER_META_KEY_PATTERN, values strings without control characters, FILE_USER_META_BYTES_MAX
 * UTF-8 bytes of keys and values in all. Returns a copy with its keys sorted.
 */
export function requireUserMeta (value: unknown, what = 'meta'): Record<string, string> {
  if (typeof value !== 'object' || value === null || Array.isArray(value) || value instanceof Uint8Array) {
    throw new InvalidArgumentError(`${what} must be a map of strings`, { field: what })
  }
  const keys = Object.keys(value)
  if (keys.length > FILE_USER_META_ENTRIES_MAX) {
    throw new InvalidArgumentError(`${what} has ${keys.length} entries, more than ${FILE_USER_META_ENTRIES_MAX}`,
      { field: what, entries: keys.length, entriesMax: FILE_USER_META_ENTRIES_MAX })
  }
  const out: Record<string, string> = {}
  let bytes = 0
  for (const k of keys.sort()) {
    if (!FILE_USER_META_KEY_PATTERN.test(k)) {
      throw new InvalidArgumentError(`${what} key must match ${FILE_USER_META_KEY_PATTERN.source}`, { field: what, key: k.slice(0, 64) })
    }
    const v = (value as Record<string, unknown>)[k]
    if (typeof v !== 'string' || META_VALUE_REFUSED.test(v)) {
      throw new InvalidArgumentError(`${what}.${k} must be a string without control characters`, { field: `${what}.${k}` })
    }
    bytes += k.length + UTF8.encode(v).byteLength
    if (bytes > FILE_USER_META_BYTES_MAX) {
      throw new InvalidArgumentError(`${what} holds more than ${FILE_USER_META_BYTES_MAX} bytes`, { field: what, bytesMax: FILE_USER_META_BYTES_MAX })
    }
    out[k] = v
  }
  return out
}

/** A page of MetadataView.list: the entries after `after` (a name), at most `limit` of them. */
export interface ListDirPage {
  after?: string
  limit?: number
}

export interface DirEntry {
  path: string
  name: string
  type: 'file' | 'dir'
  /** Bytes of a file; for a directory, the number of entries directly in it. */
  size: number
  /**
   * A file's mtime, version and etag (FileMeta.etag, when set): what an object listing shows. Set on
   * the file entries of `fs.ls` (FileService.list); MetadataView.list leaves them out.
   */
  mtimeMs?: number
  version?: number
  etag?: string
}

export interface MemberRecord {
  id: PeerIdString
  name: string
  region: string
  addrs: string[]
  /** Set by SetDraining: the node takes no new copies and its copies are being moved off it. */
  draining?: boolean
}

/**
 * A join token as metadata keeps it: only the SHA-256 of its secret, so reading metadata never
 * reveals a usable token. Tokens may be used by several nodes until they expire (like kubeadm's).
 */
export interface JoinTokenRecord {
  /** Public part of the token: 16 lower-case hex digits. */
  id: string
  /** `sha256:<hex>` of the secret part. */
  secretHash: string
  createdAtMs: number
  expiresAtMs: number
  /** PeerId of the Admin who created it. */
  createdBy: PeerIdString
  /** Joins left; the record is dropped when the last is used. Absent: any number (tokens of older versions). */
  usesLeft?: number
  /** The only PeerId that may join with it, when set. */
  forPeer?: PeerIdString
}

/**
 * An S3 access key (system group): the gateway looks up `accessKeyId`, checks a request's SigV4
 * signature with `secretAccessKey`, and acts as `user` (whose role and tenant authorize it as any
 * of its calls). The secret is kept in the clear because SigV4 needs it on the server (Garage does
 * the same); it is returned once, when made, and never listed, logged or audited.
 */
export interface S3KeyRecord {
  /** S3_ACCESS_KEY_ID_PATTERN: `DFS` and 17 upper-case letters or digits. */
  accessKeyId: string
  /** S3_SECRET_KEY_PATTERN: 40 characters of `[A-Za-z0-9+/]`. */
  secretAccessKey: string
  user: PeerIdString
  createdAtMs: number
}

/** An access key id: 20 upper-case letters and digits, starting `DFS` (AWS's are 20, starting `AKIA`). */
export const S3_ACCESS_KEY_ID_PATTERN = /^DFS[0-9A-Z]{17}$/
/** A secret access key: 40 characters of base64's alphabet (as AWS's). */
export const S3_SECRET_KEY_PATTERN = /^[A-Za-z0-9+/]{40}$/
/** Most S3 access keys the cluster keeps. */
export const S3_KEYS_MAX = 10_000

/** Cluster-wide settings, kept in the system group; `SetConfig` changes one at a time. */
export interface ClusterConfig {
  /** Copies of every extent (1..16, default 3). */
  replicationFactor: number
  /** Name of the placement policy (a `placement` service; default `default`). */
  placementPolicy: string
  /** Name of the rebalance policy (a `rebalance` service; default `default`). */
  rebalancePolicy: string
  /** Imbalance past which a rebalance plans moves (> 0, default 0.5). */
  imbalanceThreshold: number
  /** Fraction of a node's capacity past which it takes no new copy ((0, 1], default 0.9). */
  fillLimit: number
  /** Audit entries kept (AUDIT_RETENTION_MIN..AUDIT_RETENTION_MAX, default AUDIT_RETENTION_DEFAULT). */
  auditRetention: number
  /** Requests per second one user may make on one node (0: unlimited, the default; a tenant may set its own). */
  userRequestRate: number
  /**
   * The codec new extents that compress are stored and sent with, or `off` (default
   * COMPRESSION_DEFAULT). Changing it leaves extents already written as they are.
   */
  compression: CompressionSetting
}

export const CLUSTER_CONFIG_DEFAULTS: Readonly<ClusterConfig> = Object.freeze({
  replicationFactor: 3,
  placementPolicy: 'default',
  rebalancePolicy: 'default',
  imbalanceThreshold: 0.5,
  fillLimit: 0.9,
  auditRetention: 10_000,
  userRequestRate: 0,
  compression: COMPRESSION_DEFAULT
})

export interface ClusterRecord {
  clusterId: string
  createdAtMs: number
  /**
   * Number of Raft groups that own the metadata shards (set at creation by a sharded metadata
   * service; absent when one group holds everything).
   */
  metadataGroups?: number
  /** The public half of the cluster key (ClusterKey.publicKey); absent until one is set. */
  publicKey?: string
}

/**
 * Operations of the metadata state machine. `apply` of the same sequence of operations gives the same
 * state and results on every replica: operations carry every input (times, ids, placement) and apply
 * never reads a clock or a random source.
 */
export type MetadataOp =
  | { type: 'InitCluster', clusterId: string, createdAtMs: number, admin: PeerIdString, member: MemberRecord, metadataGroups?: number, clusterKey?: ClusterKey }
  /** Sets the cluster key of a cluster created without one (AlreadyExists once it has one). */
  | { type: 'SetClusterKey', clusterKey: ClusterKey }
  | { type: 'PutMember', member: MemberRecord }
  | { type: 'RemoveMember', id: PeerIdString }
  /**
   * Grants `role` (within `tenant`, or cluster-wide when it is null or absent) or revokes (`role` null).
   * FailedPrecondition when it would leave no cluster-wide admin.
   */
  | { type: 'SetRole', peer: PeerIdString, role: Role | null, tenant?: string | null }
  /** Records a join token; tokens that expired before `token.createdAtMs` are dropped at the same time. */
  | { type: 'CreateJoinToken', token: JoinTokenRecord }
  | { type: 'RevokeJoinToken', id: string }
  /**
   * Spends one use of a token for `peer` at `nowMs` (the proposer's clock): InvalidToken when it is
   * unknown, used up or for another peer, TokenExpired past its expiry. The last use drops the record.
   */
  | { type: 'UseJoinToken', id: string, peer: PeerIdString, nowMs: number }
  /** Appends records to the audit log (system group): each gets the next seq and its chained hash. */
  | { type: 'AppendAudit', records: AuditRecord[] }
  /**
   * Creates (`create`: AlreadyExists if it exists) or changes (NotFound if it does not) a tenant. Lives
   * in the data group of `tenantRootPath(name)`; lowering a quota below the usage is allowed (later
   * puts that add are refused).
   */
  | { type: 'PutTenant', tenant: TenantRecord, create: boolean }
  /** Removes a tenant: FailedPrecondition while it holds files. */
  | { type: 'RemoveTenant', name: string }
  /** Sets one cluster setting (validated by key: see ClusterConfig). */
  | { type: 'SetConfig', key: keyof ClusterConfig, value: number | string }
  | { type: 'CreateExtent', extent: ExtentRecord }
  | { type: 'DeleteExtent', id: string }
  | { type: 'UpdateReplication', id: string, replicas: PeerIdString[] }
  /** Switches one replica from `from` to `to` in place; clears a recorded move. */
  /** `recorded`: only while this very move is recorded on the extent (a cancelled one is refused: NotFound). */
  | { type: 'MigrateExtent', id: string, from: PeerIdString, to: PeerIdString, recorded?: true }
  /** Records a move intent (see ExtentRecord.move): `from` holds a copy, `to` none, no move recorded yet. */
  | { type: 'StartMove', id: string, from: PeerIdString, to: PeerIdString }
  /** Drops the extent's recorded move (its target became unfit); the replica set is unchanged. */
  | { type: 'CancelMove', id: string }
  /** Marks a member as draining (no new copies; its copies move away) or not. */
  | { type: 'SetDraining', id: PeerIdString, draining: boolean }
  /**
   * Creates the file's extents and replaces the file at `path` in one step. `inline`: the bytes of
   * every extent (`inline[i]` of `extents[i]`, INLINE_FILE_BYTES_MAX in all) when the operation
   * itself carries them to the extents' replicas (see MetadataServiceInit.onInlineExtents); the
   * state keeps the records, never the bytes.
   */
  | { type: 'PutFile', path: string, size: number, mtimeMs: number, extents: ExtentRecord[], inline?: Uint8Array[], meta?: FileMeta, stage?: string }
  /**
   * Records up to STAGE_BATCH_MAX extents of a put in progress under stage `stage` (see STAGE_BATCH_MAX
   * below for the rules): the first creates the stage, later ones append to it.
   */
  | { type: 'StageExtents', stage: string, path: string, node: PeerIdString, extents: ExtentRecord[], createdAtMs: number, transfer?: string }
  /** Drops a stage and its extents (the result's `freed`): NotFound when there is none, InvalidArgument when `path` is not its path. */
  | { type: 'DropStage', stage: string, path: string }
  /** Removes the file and its extent records; the result lists the extents whose bytes may be freed. */
  | { type: 'DeleteFile', path: string }
  /**
   * Moves the file (or every file under the directory) at `from` to `to` in one step; see
   * the rules at RENAME_FILES_MAX below. Both paths lie in one top-level directory
   * (requireRenameWithinTopLevel).
   */
  | { type: 'RenameFile', from: string, to: string, replace?: boolean }
  /**
   * Makes `path` an explicit directory (see EXPLICIT_DIRS_MAX below): a file there is AlreadyExists, a
   * file above it NotADirectory, `/` InvalidArgument; a directory there already becomes explicit.
   */
  | { type: 'MakeDir', path: string }
  /**
   * Removes the empty directory at `path`: NotFound when no directory is there, DirectoryNotEmpty
   * while it has entries; the implicit directories above it that become empty go with it.
   */
  | { type: 'RemoveDir', path: string }
  /**
   * Makes `to` a file of the parts' extents in order, in one step, moving no bytes: see the rules at
   * COMPOSE_PARTS_MAX below.
   */
  | { type: 'ComposeFile', to: string, parts: string[], mtimeMs: number, meta?: FileMeta, replace?: boolean }
  /**
   * Makes `to` a file of the same extents as the file `from` (shared, reference-counted: no byte
   * moves), in one step: see the rules at CopyFileOp below.
   */
  | { type: 'CopyFile', from: string, to: string, mtimeMs: number, meta?: FileMeta, replace?: boolean }
  /** A cross-group rename, in the group of `from`: freezes the file there (see TRANSFERS_MAX below). */
  | { type: 'BeginTransfer', tx: string, from: string, to: string, node: PeerIdString, createdAtMs: number }
  /** Ends a transfer the target accepted: the file at `from` goes, its extents are not freed (the target owns them). */
  | { type: 'FinishTransfer', tx: string, from: string }
  /** Ends a transfer the target refused: the file at `from` is no longer frozen. */
  | { type: 'AbortTransfer', tx: string, from: string }
  /** In the group of `to`: commits the transfer staged as stage `tx` as the file at `to` (a rename's rules). */
  | { type: 'AcceptTransfer', tx: string, from: string, to: string, size: number, mtimeMs: number, version: number, meta?: FileMeta, replace?: boolean, createdAtMs: number }
  /** In the group of `to`: fences transfer `tx` (a later AcceptTransfer is refused) unless it was accepted; the result's `accepted` says which. */
  | { type: 'RefuseTransfer', tx: string, from: string, to: string, createdAtMs: number }
  /** In the group of `to`: forgets the outcome of transfer `tx` (once the source group ended it). */
  | { type: 'ForgetTransfer', tx: string, to: string }
  /**
   * Sets a file's modification time (utimens through a mount): NotFound, IsADirectory, FailedPrecondition
   * while it moves to another group. Its version and extents stay: no content changed.
   */
  | { type: 'SetFileTime', path: string, mtimeMs: number }
  /** Records an S3 access key (system group): AlreadyExists for a taken id, FailedPrecondition past S3_KEYS_MAX or for a peer without a role. */
  | { type: 'PutS3Key', key: S3KeyRecord }
  /** Drops an S3 access key (NotFound when there is none). */
  | { type: 'RevokeS3Key', accessKeyId: string }

export type MetadataOpType = MetadataOp['type']

/**
 * RenameFile, like POSIX rename(2) within one file system:
 * - A file keeps its record: the same extents (no byte moves), size and mtime. Its version is kept
 *   (a rename changes no content, as rename(2) keeps the inode), except that replacing a file
 *   gives at least the replaced one's version + 1, so a path that holds a file all along never
 *   shows a lower version than before.
 * - The target follows a put's conflict rules: a directory there is IsADirectory, a file above it
 *   NotADirectory (also `from` itself: a file cannot move under itself). A file there is
 *   AlreadyExists unless `replace` is true; then it is removed as DeleteFile would and its extents
 *   are in the result's `freed`.
 * - A directory moves with every file and explicit directory under it (at most RENAME_FILES_MAX of
 *   both together, else FailedPrecondition) to a target that does not exist (a directory there is
 *   AlreadyExists, a file NotADirectory; `replace` never removes anything then), never under itself
 *   (InvalidArgument).
 * - `from` missing (no file, no directory) is NotFound; `from === to` changes nothing (NotFound when
 *   nothing is there).
 * - Both paths lie in one data group (MetadataService.groupOf; a service refuses others before
 *   proposing, and a data group's state machine refuses paths outside its shards) and in one
 *   namespace: a tenant's files all live under its root, one top-level directory. A file moves
 *   between groups by a transfer (TRANSFERS_MAX); a directory does not.
 * A node of a version without RenameFile rejects it (InvalidArgument, unknown operation type) where
 * the rest of its group applies it, and its state would then differ: every member must run a
 * version with RenameFile before one is proposed.
 */
export const RENAME_FILES_MAX = 10_000

/**
 * Shared extents. A file lists extent ids; an extent may be listed by several files of its data
 * group (and more than once by one file), and the group counts the references: an extent's record
 * goes, and its bytes are freed (the result's `freed`), when the last reference goes. A staged
 * extent is referenced by its stage alone.
 *
 * CopyFile { from, to, mtimeMs, meta, replace } (`dfs fs cp`, S3's CopyObject):
 * - `from` is a file (NotFound, IsADirectory), not being moved to another group (FailedPrecondition);
 *   both paths in one data group (the service refuses others before proposing) and one namespace;
 * - `to` follows a put's conflict rules (IsADirectory, NotADirectory, AlreadyExists unless
 *   `replace`; `to === from` is InvalidArgument) and a tenant's quota (the copy's bytes count);
 * - atomically `to` becomes a file of `from`'s extents, size and meta (`meta` given replaces them),
 *   version the replaced file's + 1 or 1, mtime `mtimeMs`; a replaced file's extents no other file
 *   references are freed.
 */
export type CopyFileOp = Extract<MetadataOp, { type: 'CopyFile' }>

/**
 * A rename across data groups (top-level directories that hash to different groups), without
 * moving bytes and crash-safely, by a coordinator (the node serving `fs.mv`) in steps, each one
 * Raft operation of one group:
 * 1. BeginTransfer { tx, from, to, node, createdAtMs } in the group of `from` (the source): `from`
 *    is a file whose extents no other file references and none is staged (FailedPrecondition
 *    otherwise); it is frozen: readable, but no operation changes it or its extents' records
 *    (FailedPrecondition) until the transfer ends. At most TRANSFERS_MAX transfers per group.
 * 2. StageExtents { stage: tx, path: to, transfer: from, … } in the group of `to` (the target), in
 *    batches: the source's extent records, copied as they are. A transfer stage frees nothing when
 *    dropped (the source owns the bytes).
 * 3. AcceptTransfer { tx, from, to, size, mtimeMs, version, meta, replace } in the target: a
 *    rename's rules at `to` (conflicts, quota), and the file appears there with the staged extents,
 *    its size, mtime, version and meta. The target records the outcome `accepted` for `tx`; a
 *    transfer it already refused (RefuseTransfer) is FailedPrecondition. From here the transfer only
 *    goes forward.
 * 4. FinishTransfer { tx, from } in the source: the file at `from` goes without freeing anything.
 *    Or, when step 3 was refused, AbortTransfer { tx, from }: `from` thaws. Then
 *    ForgetTransfer { tx, to } in the target drops the outcome.
 * A coordinator that dies leaves the source's transfer record; a node that finds it (its own at
 * start-up, anyone's past TRANSFER_AGE_MS_MAX) asks the target with RefuseTransfer, which fences a
 * transfer not yet accepted and answers whether it was (`accepted`), and finishes or aborts
 * accordingly. So the file is never lost and, once every transfer is resolved, at one name only;
 * between steps 3 and 4 a reader may see it at both. While both groups hold an extent's record the
 * one that is live (not frozen, not staged for a transfer) is the extent's (MetadataView.getExtent).
 */
export const TRANSFERS_MAX = 1024

/** Age past which any node resolves a transfer whose coordinator seems gone (a transfer takes seconds). */
export const TRANSFER_AGE_MS_MAX = 15 * 60_000

/** A cross-group rename in progress, as its source group records it (BeginTransfer). */
export interface TransferRecord {
  /** A lower-case UUID chosen by the coordinator; also the target's stage id. */
  tx: string
  from: string
  to: string
  /** The coordinator. */
  node: PeerIdString
  createdAtMs: number
}

/** A transfer's outcome as its target group records it (AcceptTransfer or RefuseTransfer), until ForgetTransfer. */
export interface TransferOutcome {
  tx: string
  from: string
  to: string
  accepted: boolean
  createdAtMs: number
}

/**
 * Explicit directories (MakeDir): a directory made by MakeDir stays when its last entry goes, until
 * RemoveDir removes it empty; a directory that exists only because something lies under it
 * (implicit, as every directory was before MakeDir) vanishes with its last entry. A rename of a
 * directory carries the explicit directories under it along; a snapshot carries them. They count
 * against no tenant quota, but one state machine (a data group) keeps at most EXPLICIT_DIRS_MAX
 * (FailedPrecondition past it). As with RenameFile, every member must run a version with MakeDir,
 * RemoveDir and ComposeFile before one is proposed (an older node rejects them as unknown).
 */
export const EXPLICIT_DIRS_MAX = 1_000_000

/**
 * ComposeFile { to, parts, mtimeMs, meta, replace } (S3's CompleteMultipartUpload without copying):
 * - every part is an existing file, all distinct, 1..COMPOSE_PARTS_MAX of them, `to` not among
 *   them, and all in the top-level directory of `to` (one data group: requireComposeWithinTopLevel);
 *   their extents, FILE_EXTENTS_MAX in all;
 * - `to` follows a put's conflict rules (IsADirectory, NotADirectory; AlreadyExists when a file is
 *   there and `replace` is not true);
 * - atomically: `to` becomes a file whose extents are the parts' extents in order and whose size is
 *   their sum (version: the replaced file's + 1, else 1; `meta` as given), the parts disappear (their
 *   extents are `to`'s now, not freed), and a replaced file's extents are freed (the result's `freed`).
 * - a tenant's usage keeps its bytes (less a replaced file's) and loses files: no quota can refuse it.
 */
export const COMPOSE_PARTS_MAX = 10_000

/**
 * Staged commits, for files with more extents than one operation can carry (OP_BYTES_MAX of the
 * metadata service): a put records its extents in batches (StageExtents, at most STAGE_BATCH_MAX
 * each) under a stage, a record of its data group { stage, path, node, extents, createdAtMs }, and
 * commits with one PutFile whose `stage` names it.
 * - A staged extent is in metadata (MetadataView.getExtent finds it, so no sweep frees it), owned by
 *   its stage and by no file: DeleteExtent refuses it, no other PutFile or stage may list it.
 * - StageExtents: `path` in the data group's shards; the stage's first op fixes `path`, `node`
 *   (the put's coordinator) and `createdAtMs`, later ones must repeat the same `path` and `node`
 *   (else InvalidArgument). A stage holds at most FILE_EXTENTS_MAX extents; a data group at most
 *   STAGES_MAX stages (FailedPrecondition past either). No file appears before the commit.
 * - PutFile { stage }: the file's extents are the stage's, in order, then the op's own; `size` is
 *   the sum of them all; the stage's `path` must be the op's (InvalidArgument); an unknown stage is
 *   NotFound. Atomic: readers see the old version or the whole new one, and the stage is gone.
 *   A PutFile that is refused (quota, a directory there…) leaves the stage as it was.
 * - DropStage { stage, path }: the stage goes and its extents are in the result's `freed`.
 * - Stages are in snapshots. A stage whose put died (its node crashed mid-put) is dropped by the
 *   nodes' periodic check (STAGE_AGE_MS_MAX).
 * As with RenameFile, every member must run a version that knows these operations before one is
 * proposed. `path` is in DropStage so the operation routes to its group like any path's.
 */
export const STAGE_BATCH_MAX = 1024

/** Most stages one data group keeps (puts of big files in progress at once). */
export const STAGES_MAX = 4096

/**
 * Age past which a stage counts as abandoned: longer than any put may take (PUT_DURATION_MAX_MS,
 * 6 h) plus an hour.
 */
export const STAGE_AGE_MS_MAX = 7 * 3600_000

/** A put in progress: the extents it recorded so far (see STAGE_BATCH_MAX). */
export interface StageRecord {
  /** A lower-case UUID chosen by the put. */
  stage: string
  /** The file it will commit. */
  path: string
  /** The node coordinating the put. */
  node: PeerIdString
  /** Extent ids in file order. */
  extents: string[]
  /** When its first batch was proposed (the proposer's clock). */
  createdAtMs: number
  /** Set on a transfer's stage (TRANSFERS_MAX): the path the file comes from, in another group. */
  transfer?: string
}

/** The first segment of a canonical path other than `/`. */
function topLevelOf (path: string): string {
  const end = path.indexOf('/', 1)
  return path.slice(1, end < 0 ? undefined : end)
}

/** Refuses (InvalidArgument) a rename (or copy) that names `/` (canonical paths). */
export function requireNotRoot (from: string, to: string): void {
  if (from === '/' || to === '/') {
    throw new InvalidArgumentError('/ cannot be renamed or copied, nor anything renamed or copied to it', { from, to })
  }
}

/**
 * Refuses (InvalidArgument) a compose whose parts are not all in the top-level directory of `to`
 * (canonical paths), or that names `/`: one data group must apply it atomically.
 */
export function requireComposeWithinTopLevel (to: string, parts: readonly string[]): void {
  if (to === '/') throw new InvalidArgumentError('/ is a directory: nothing can be composed there', { to })
  const top = topLevelOf(to)
  for (const part of parts) {
    if (part === '/' || topLevelOf(part) !== top) {
      throw new InvalidArgumentError('every part must be in the top-level directory of the target', { to, part })
    }
  }
}

/**
 * Largest file whose bytes travel inside its PutFile (`inline`) instead of being copied to the
 * replicas before the commit. Such a put costs one consensus round instead of a copy round and then
 * a consensus round; the log entry holds the bytes until the members have stored them (every member
 * keeps its recent log in memory, so the bound is small: Garage inlines objects under 3 KiB).
 */
export const INLINE_FILE_BYTES_MAX = 8 * 1024

/** A file's extent and its bytes, as an applied PutFile carried them (MetadataServiceInit.onInlineExtents). */
export interface InlineExtent {
  extent: ExtentRecord
  bytes: Uint8Array
}

/**
 * What apply returns. `ok: false` results carry a typed error in wire form (name, message, details):
 * a rejected operation is a deterministic outcome, the same on every replica, not an exception.
 */
export type MetadataResult =
  | { ok: true, index: number, file?: FileRecord, freed?: ExtentRecord[], extent?: ExtentRecord, accepted?: boolean }
  | { ok: false, index: number, error: { name: string, message: string, details?: Record<string, unknown> } }

/**
 * What a read looks at, so a sharded service confirms only the groups that hold it (a ReadIndex
 * round per group). Without a scope a read covers everything. A function that looks outside its
 * scope still runs, but what it sees there may be stale.
 */
export interface ReadScope {
  /** Cluster record, members, roles, join tokens. */
  system?: boolean
  /** Files and directories at or under these paths (`/` covers every file). */
  paths?: string[]
  /** Extent records looked up by id. */
  extents?: boolean
}

export interface ReadOptions extends CallOptions {
  scope?: ReadScope
}

/**
 * How current a client's read must be. `linearizable` (the default): it sees every write committed
 * before it began, which takes a quorum (MetadataService.read). `stale`: the serving node's applied
 * state (MetadataService.staleRead), which may lag the cluster but needs no other node — the read a
 * node cut off from a majority can still answer. A reply says which one it served.
 */
export const CONSISTENCY_LEVELS = ['linearizable', 'stale'] as const
export type Consistency = typeof CONSISTENCY_LEVELS[number]
export const CONSISTENCY_DEFAULT: Consistency = 'linearizable'

/** One consensus group of a replicated metadata service, as this node last applied it. */
export interface MetadataGroupInfo {
  /** 0: the system group (or the only group); 1..n: data groups. */
  group: number
  /** `all`: one group holds every kind of metadata (an unsharded service). */
  kind: 'system' | 'data' | 'all'
  /** Shards the group owns (none for the system group). */
  shards: number[]
  voters: PeerIdString[]
  learners: PeerIdString[]
  leader: PeerIdString | undefined
  term: number
}

/** A read-only view of the applied metadata state. */
export interface MetadataView {
  cluster: () => ClusterRecord | undefined
  members: () => MemberRecord[]
  role: (peer: PeerIdString) => Role | undefined
  /** The peer's grant (role and tenant), or undefined. */
  user: (peer: PeerIdString) => UserRecord | undefined
  /** Every grant, sorted by id. */
  users: () => UserRecord[]
  /** A tenant with its usage (read with scope `paths: [tenantRootPath(name)]`). */
  tenant: (name: string) => TenantInfo | undefined
  /** Every tenant, sorted by name (read with scope `paths: ['/']`). */
  tenants: () => TenantInfo[]
  joinToken: (id: string) => JoinTokenRecord | undefined
  /** Every live join token, sorted by id. */
  joinTokens: () => JoinTokenRecord[]
  /** The retained audit log: where its chain starts and its entries, oldest first. */
  audit: () => { checkpoint: AuditCheckpoint, entries: readonly AuditEntry[] }
  /** The cluster key (members only: never send the private half anywhere). */
  clusterKey: () => ClusterKey | undefined
  /** Cluster settings, defaults filled in. */
  config: () => ClusterConfig
  getFile: (path: string) => FileRecord | undefined
  getExtent: (id: string) => ExtentRecord | undefined
  /**
   * Entries directly under a directory, sorted by name (UTF-16 code units): all of them, or the page
   * of at most `page.limit` whose names sort after `page.after`, in O(page) (plus a sort of the
   * directory's names the first time after it changed). Throws NotFound or NotADirectory.
   */
  list: (dir: string, page?: ListDirPage) => DirEntry[]
  /** Whether `path` is a directory: `/`, an explicit one (MakeDir), or one with at least one entry. */
  isDirectory: (path: string) => boolean
  /** An S3 access key by id (system group). */
  s3Key: (accessKeyId: string) => S3KeyRecord | undefined
  /** Every S3 access key, sorted by id. */
  s3Keys: () => S3KeyRecord[]
  /** Every extent id the metadata references (for garbage collection of unreferenced bytes). */
  extentIds: () => Iterable<string>
  /**
   * Every stage (puts in progress, see STAGE_BATCH_MAX), sorted by id; absent in services of a
   * version without staged commits.
   */
  stages?: () => StageRecord[]
  /**
   * Cross-group renames in progress (sources' records, sorted by tx) and the outcomes targets keep;
   * absent in services of a version without them.
   */
  transfers?: () => { out: TransferRecord[], in: TransferOutcome[] }
  /** Index of the last operation applied to this view (of the system group when sharded). */
  appliedIndex: () => number
}

export interface MetadataStatus {
  /** PeerId of the current leader, or undefined when none is known. */
  leader: PeerIdString | undefined
  term: number
  commitIndex: number
  appliedIndex: number
}

/**
 * Replicated (or, on one node, locally logged) metadata.
 * - `propose` resolves once the operation is durable on a quorum and applied locally; it resolves
 *   with the result of apply, and throws that result's typed error when `ok` is false.
 * - `read` runs `fn` against state that includes every operation committed before `read` was called
 *   (linearizable).
 */
export interface MetadataService {
  start: (options?: CallOptions) => Promise<void>
  stop: () => Promise<void>
  propose: (op: MetadataOp, options?: CallOptions) => Promise<MetadataResult & { ok: true }>
  read: <T>(fn: (view: MetadataView) => T, options?: ReadOptions) => Promise<T>
  /** The system group's (or the only group's) leader and term. */
  status: () => MetadataStatus
  /**
   * Present when metadata is sharded over several consensus groups: how many shards keys hash
   * into, and the groups with their shards, replicas and leaders.
   */
  groups?: () => { shardCount: number, groups: MetadataGroupInfo[] }
  /**
   * Runs `fn` on this node's applied state without asking anyone: it may be stale, and it answers
   * with no quorum reachable. For routing and discovery (e.g. where members listen), and for a client
   * that asked for a stale read (Consistency); never to answer a client that did not ask.
   */
  staleRead?: <T>(fn: (view: MetadataView) => T) => T
  /**
   * Present when metadata is split over data groups: the group holding a (canonical) path. Two paths
   * of one group are renamed, copied and composed by one operation; a rename across groups is a
   * transfer (TRANSFERS_MAX). Absent: one group holds every path.
   */
  groupOf?: (path: string) => number
  /** Present when the service replicates through a consensus group. */
  membership?: MetadataMembership
  /** Present with a consensus log: counters of each group this node runs (for metrics). */
  raftStats?: () => MetadataRaftStats[]
  /** Present with a consensus log: `listener` hears the seconds each fsync'd log write takes, until the returned function is called. */
  onLogSync?: (listener: (seconds: number) => void) => () => void
  /**
   * Present when the service carries PutFile's `inline` bytes to its members (it calls
   * `onInlineExtents` wherever it applies one): the voters of the group that commits a PutFile of
   * `path`, as this node last applied them (none: no PutFile of `path` may carry bytes now). A
   * PutFile may carry its bytes only when its extents' replicas are exactly these voters, so that
   * every log of the commit quorum belongs to a node that will store a copy.
   */
  inlineVoters?: (path: string) => PeerIdString[]
}

/** One consensus group's counters on this node (MetadataService.raftStats). */
export interface MetadataRaftStats {
  /** As MetadataGroupInfo.group. */
  group: number
  /** Proposals this node made (its own and forwarded ones). */
  proposals: number
  /** Of those, applied. */
  proposalsApplied: number
  /** Proposed again because their term's leader lost them. */
  proposalsRetried: number
  /** Proposals that ended in an error (refused, deadline, abort, the group stopping); absent: not counted. */
  proposalsFailed?: number
  /** Entries this node applied (everyone's). */
  entriesApplied: number
  /** This node's proposals waiting to apply. */
  pending: number
}

/** Membership of a replicated metadata service's consensus group. */
export interface MetadataMembership {
  /** The group's voters and learners as this node last applied them. */
  members: () => { voters: PeerIdString[], learners: PeerIdString[] }
  /**
   * Adds a node as a learner (it receives the log but does not vote); the service promotes learners
   * to voters as the cluster grows (1 → 3 → 5 voters). Resolves once the change is applied here;
   * a node that is already a member is left as it is.
   */
  addLearner: (id: PeerIdString, options?: CallOptions) => Promise<void>
  /** Removes a node from the group (a voter or a learner); resolves once the change is applied here. */
  remove: (id: PeerIdString, options?: CallOptions) => Promise<void>
}

export interface MetadataServiceInit {
  /** A directory the service owns exclusively (created if missing). */
  dir: string
  /** PeerId of this node. */
  nodeId: PeerIdString
  logger: Logger
  /** The node's libp2p host, for services that replicate over the network (e.g. Raft). */
  network?: PeerNetwork
  /**
   * This node joins an existing cluster: it starts with an empty log and learns the membership and
   * the state from the group's leader (after a member added it with `membership.addLearner`).
   */
  join?: boolean
  /** Applied operations between snapshots of the metadata (after which the log before it is compacted). */
  snapshotEvery?: number
  /** A sharded service creating a new cluster: how many groups own the shards (the service's default otherwise). */
  metadataGroups?: number
  /**
   * Called on every node that applies a PutFile carrying `inline` bytes, with its extents and their
   * bytes — also when a restarted node applies its log again — so the node stores the copies its
   * PutFile lists on it. The service snapshots its state (which ends the log's copy of the bytes on
   * this node) only after the promises of the operations before the snapshot resolved; a rejected
   * one is offered again (with the extents that failed) before the next attempt.
   */
  onInlineExtents?: (extents: InlineExtent[]) => Promise<void>
  /**
   * Called before the service snapshots a group (which ends the log's copy of the bytes on this
   * node), once the promises of onInlineExtents for the operations before it resolved: resolves
   * when every copy those calls stored is durable. With it, onInlineExtents may resolve as soon as
   * its copies are stored, not yet fsync'd (ExtentPutOptions.durable false): until the snapshot the
   * log holds the bytes durably, and a restarted node applies it again. A rejection postpones the
   * snapshot.
   */
  onInlineSettle?: () => Promise<void>
  /**
   * Called when a group of this node restored a snapshot its leader sent, with the small extents
   * (at most INLINE_FILE_BYTES_MAX) the restored state holds: bytes that travelled inside PutFiles
   * (see onInlineExtents) reached this node only if it applied those entries, which the snapshot
   * replaced. The node fetches the copies it is listed for and lacks; the group acknowledges the
   * snapshot — and counts as caught up — once the promise resolves (or `signal` aborts).
   */
  onSnapshotRestored?: (extents: ExtentRecord[], options: CallOptions) => Promise<void>
}

export type MetadataServiceFactory = (init: MetadataServiceInit) => MetadataService
