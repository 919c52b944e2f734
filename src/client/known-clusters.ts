import { mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import { dirname } from 'node:path'
import { ConfigError, WrongClusterError } from '@dfs/api'
import { identifyNonce, verifyClusterProof } from '../security/cluster-key.js'
import type { RpcClient } from '../net/rpc/client.js'
import type { PeerId } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'

/**
 * What the CLI remembers of the node addresses it talked to, as ssh's known_hosts: for each address,
 * the cluster that answered there (the pin of its cluster key, proven by `cluster.identify`) and the
 * PeerId Noise proved. A later session whose node has that PeerId costs nothing more (Noise proved
 * it already). Another PeerId at the address must prove the remembered cluster: a new node of the
 * same cluster is accepted and remembered; another cluster (or a node that cannot prove one) is
 * refused with WrongCluster, unless DFS_ACCEPT_NEW_CLUSTER=1 (then the new cluster is remembered).
 */

/** The environment variable that accepts a different cluster at a remembered address (value `1`). */
export const ACCEPT_NEW_CLUSTER_ENV = 'DFS_ACCEPT_NEW_CLUSTER'
/** Addresses remembered; past it the least recently confirmed are forgotten. */
export const KNOWN_CLUSTERS_MAX = 1024
/** Largest file read: an entry is ~200 bytes. */
const KNOWN_CLUSTERS_FILE_BYTES_MAX = 1024 * 1024

export interface KnownCluster {
  peerId: string
  clusterId: string
  /** clusterPin of the cluster's public key. */
  pin: string
  /** When the entry was last written (ISO 8601). */
  seenAt: string
}

interface KnownClustersFile {
  version: 1
  clusters: Record<string, KnownCluster>
}

/** The key an address is remembered under: the transport address without a /p2p PeerId. */
export function addressKey (target: Multiaddr): string {
  return target.toString().replace(/\/p2p\/[^/]+$/, '')
}

export async function loadKnownClusters (path: string): Promise<Map<string, KnownCluster>> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException)?.code === 'ENOENT') return new Map()
    throw new ConfigError(`cannot read ${path}: ${(err as Error).message}`, { path })
  }
  const corrupt = (): ConfigError => new ConfigError(`${path} is not a known clusters file: fix or delete it`, { path })
  if (text.length > KNOWN_CLUSTERS_FILE_BYTES_MAX) throw corrupt()
  let doc: Partial<KnownClustersFile>
  try {
    doc = JSON.parse(text) as Partial<KnownClustersFile>
  } catch {
    throw corrupt()
  }
  if (doc?.version !== 1 || doc.clusters == null || typeof doc.clusters !== 'object') throw corrupt()
  const out = new Map<string, KnownCluster>()
  for (const [addr, e] of Object.entries(doc.clusters)) {
    if (typeof e?.peerId !== 'string' || typeof e.clusterId !== 'string' || typeof e.pin !== 'string') throw corrupt()
    out.set(addr, { peerId: e.peerId, clusterId: e.clusterId, pin: e.pin, seenAt: typeof e.seenAt === 'string' ? e.seenAt : '' })
  }
  return out
}

/** Writes the file atomically (mode 0600, in a 0700 dir created if missing), keeping the newest KNOWN_CLUSTERS_MAX. */
export async function saveKnownClusters (path: string, entries: Map<string, KnownCluster>): Promise<void> {
  const kept = [...entries].sort((a, b) => b[1].seenAt.localeCompare(a[1].seenAt)).slice(0, KNOWN_CLUSTERS_MAX)
  const doc: KnownClustersFile = { version: 1, clusters: Object.fromEntries(kept.sort((a, b) => a[0].localeCompare(b[0]))) }
  await mkdir(dirname(path), { recursive: true, mode: 0o700 })
  const tmp = `${path}.${process.pid}.tmp`
  await writeFile(tmp, JSON.stringify(doc, null, 2) + '\n', { mode: 0o600 })
  await rename(tmp, path)
}

export interface CheckClusterOptions {
  /** The known clusters file. */
  path: string
  /** The CLI user's PeerId (the caller the proof must name). */
  self: string
  timeoutMs: number
  /** Accept (and remember) a different cluster at a remembered address. */
  acceptNew: boolean
}

/**
 * Checks the node `rpc` talks to against what `options.path` remembers for `target` (see the top of
 * this file) and remembers what it learns. Connects first: the stream it opens is the one the
 * session's first call uses, so a node with the remembered PeerId costs no extra round trip.
 */
export async function checkKnownCluster (rpc: RpcClient, target: Multiaddr, options: CheckClusterOptions): Promise<void> {
  const addr = addressKey(target)
  const server = (await rpc.connect({ signal: AbortSignal.timeout(options.timeoutMs) }) as PeerId | undefined)?.toString()
  if (server === undefined) throw new WrongClusterError(`could not tell which peer answered at ${addr}`, { address: addr })
  const entries = await loadKnownClusters(options.path)
  const known = entries.get(addr)
  if (known?.peerId === server) return
  const nonce = identifyNonce()
  let proven: { clusterId: string, pin: string }
  try {
    const proof = await rpc.call('cluster.identify', { nonce }, { timeoutMs: options.timeoutMs })
    proven = verifyClusterProof(proof, { nonce, caller: options.self, server })
  } catch (err) {
    const name = (err as Error)?.name
    // a node that cannot say (yet, or ever: an older version) what cluster it is: nothing to learn
    if (known === undefined && (name === 'Unavailable' || name === 'UnknownMethod')) return
    if (known === undefined || name === 'NodeUnreachable' || name === 'DeadlineExceeded') throw err
    if (!options.acceptNew) {
      throw new WrongClusterError(`the node at ${addr} is ${server}, not ${known.peerId} as remembered in ${options.path}, ` +
        `and it could not prove the remembered cluster ${known.clusterId} (${(err as Error).message}); ${howToAccept(addr, options.path)}`,
      { address: addr, peer: server, rememberedPeer: known.peerId, clusterId: known.clusterId })
    }
    entries.delete(addr)
    await saveKnownClusters(options.path, entries)
    return
  }
  if (known !== undefined && known.pin !== proven.pin && !options.acceptNew) {
    throw new WrongClusterError(`the node at ${addr} belongs to cluster ${proven.clusterId} (key pin ${proven.pin}), not to cluster ` +
      `${known.clusterId} (key pin ${known.pin}) that ${options.path} remembers for this address; ${howToAccept(addr, options.path)}`,
    { address: addr, peer: server, clusterId: proven.clusterId, pin: proven.pin, rememberedClusterId: known.clusterId, rememberedPin: known.pin })
  }
  entries.set(addr, { peerId: server, clusterId: proven.clusterId, pin: proven.pin, seenAt: new Date().toISOString() })
  await saveKnownClusters(options.path, entries)
}

function howToAccept (addr: string, path: string): string {
  return `if that is expected, run again with ${ACCEPT_NEW_CLUSTER_ENV}=1 or delete the entry for ${addr} from ${path}`
}
