/**
 * Where a metadata key lives.
 *
 * Keys hash into SHARD_COUNT (256) shards; shards are owned by Raft groups. Group 0 is the system
 * group (members, roles, join tokens, cluster configuration and the number of data groups, from which
 * the shard map follows); groups 1..G are data groups, each owning a contiguous range of shards.
 *
 * A path's shard is the hash of its FIRST segment (`/photos/2024/a.jpg` → `photos`). That keeps a
 * path, every ancestor directory and every path it can conflict with (a file where a directory is,
 * or the reverse) in one shard, so a put or rm is a single-group operation and a directory listing
 * below the top level is answered by one group. The price is that one top-level directory never
 * spreads over groups — the unit of distribution is like a bucket in an object store.
 *
 * An extent lives in the shard of the file that lists it (PutFile creates file and extents in one
 * group); a standalone extent (CreateExtent) lives in the shard of the hash of its id.
 *
 * The hash is the first byte of SHA-256: stable across versions, platforms and processes, which a
 * persisted placement needs (no seeded or process-local hash).
 */
import { createHash } from 'node:crypto'
import { InvalidArgumentError, normalizePath } from '@dfs/api'

export const SHARD_COUNT = 256
/** The group number of the system group. */
export const SYSTEM_GROUP = 0
/** Most data groups a cluster may be created with (each costs a Raft log, ticks and fsyncs per node). */
export const DATA_GROUPS_MAX = 16

function hashByte (text: string): number {
  return createHash('sha256').update(text, 'utf8').digest()[0]
}

/**
 * Shards of recently seen top-level names: a path's shard is looked up several times per operation
 * (routing, the state machine's scope check) and top-level names (buckets, tenants) are few, so
 * hashing each time was measurable. Bounded: emptied when full.
 */
const topLevelShards = new Map<string, number>()
const TOP_LEVEL_SHARDS_CACHED_MAX = 4096

/** The shard of a path (canonicalised first; `/` itself belongs to no shard: InvalidArgument). */
export function shardOfPath (path: string): number {
  const canonical = normalizePath(path)
  if (canonical === '/') throw new InvalidArgumentError('/ belongs to every shard', { path })
  const end = canonical.indexOf('/', 1)
  const top = canonical.slice(1, end < 0 ? undefined : end)
  let shard = topLevelShards.get(top)
  if (shard === undefined) {
    shard = hashByte(`p:${top}`)
    if (topLevelShards.size >= TOP_LEVEL_SHARDS_CACHED_MAX) topLevelShards.clear()
    topLevelShards.set(top, shard)
  }
  return shard
}

/** The shard of a standalone extent (one that no file lists). */
export function shardOfExtent (id: string): number {
  return hashByte(`e:${id}`)
}

export function requireDataGroups (groups: number): number {
  if (!Number.isSafeInteger(groups) || groups < 1 || groups > DATA_GROUPS_MAX) {
    throw new InvalidArgumentError(`the number of data groups must be an integer from 1 to ${DATA_GROUPS_MAX}`, { groups })
  }
  return groups
}

/** The data group (1..groups) that owns `shard`: contiguous, near-equal ranges. */
export function groupOfShard (shard: number, groups: number): number {
  return 1 + Math.floor(shard * groups / SHARD_COUNT)
}

/** The shards data group `group` owns, in order. */
export function shardsOfGroup (group: number, groups: number): number[] {
  const out: number[] = []
  for (let s = 0; s < SHARD_COUNT; s++) if (groupOfShard(s, groups) === group) out.push(s)
  return out
}
