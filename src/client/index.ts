import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { ConfigError, type Consistency, type RpcParams, type RpcResult, type UnaryMethodName } from '@dfs/api'
import { parseAddress } from '../net/address.js'
import { createHost, type Host } from '../net/host.js'
import { loadIdentityKey } from '../net/keys.js'
import { RpcClient } from '../net/rpc/client.js'
import { CALL_TIMEOUT_MS_DEFAULT } from '../net/constants.js'
import { ACCEPT_NEW_CLUSTER_ENV, checkKnownCluster } from './known-clusters.js'
import type { Multiaddr } from '@multiformats/multiaddr'

export interface ClientInit {
  /** `--node`: host:port or multiaddr. */
  node?: string
  /** Key file of the user's identity. */
  identityPath: string
  /**
   * Create the key when the file is missing (the default identity in the user's config dir). False
   * (the default) for a path the user named (DFS_IDENTITY): a missing key is then a ConfigError.
   */
  createIdentity?: boolean
  /** Data dir whose node.json names the node when neither `node` nor DFS_NODE is given. */
  dataDir: string
  timeoutMs?: number
  /**
   * The CLI's known clusters file (see known-clusters.ts): when given, the node must be the one
   * remembered for its address, or prove the remembered cluster. Absent: no check (in-process tools).
   */
  knownClustersPath?: string
}

/**
 * A read's result as any node answers it: a node that predates the `consistency` option leaves it out
 * (it served linearizable).
 */
export type FromAnyNode<T extends { consistency: Consistency }> = Omit<T, 'consistency'> & { consistency?: Consistency }

/** A CLI user's authenticated session with one node. */
export class DfsClient {
  readonly host: Host
  readonly rpc: RpcClient
  readonly target: Multiaddr
  readonly timeoutMs: number

  private constructor (host: Host, rpc: RpcClient, target: Multiaddr, timeoutMs: number) {
    this.host = host
    this.rpc = rpc
    this.target = target
    this.timeoutMs = timeoutMs
  }

  static async open (init: ClientInit): Promise<DfsClient> {
    const target = await resolveNode(init)
    const { key } = await loadIdentityKey(init.identityPath, { create: init.createIdentity === true })
    const host = await createHost({ privateKey: key })
    const timeoutMs = init.timeoutMs ?? CALL_TIMEOUT_MS_DEFAULT
    const rpc = new RpcClient({ host, target, dialTimeoutMs: timeoutMs })
    if (init.knownClustersPath !== undefined) {
      try {
        await checkKnownCluster(rpc, target, {
          path: init.knownClustersPath, self: host.peerId.toString(), timeoutMs, acceptNew: process.env[ACCEPT_NEW_CLUSTER_ENV] === '1'
        })
      } catch (err) {
        await rpc.close().catch(() => {})
        await Promise.resolve(host.stop()).catch(() => {})
        throw err
      }
    }
    return new DfsClient(host, rpc, target, timeoutMs)
  }

  /** Calls a unary method of the RPC contract with this session's deadline. */
  async call<M extends UnaryMethodName> (method: M, params: RpcParams<M>): Promise<RpcResult<M>> {
    return await this.rpc.call(method, params, { timeoutMs: this.timeoutMs })
  }

  async close (): Promise<void> {
    await this.rpc.close()
    await this.host.stop()
  }
}

/** `--node`, else DFS_NODE, else the first address in `<dataDir>/node.json`. */
export async function resolveNode (init: { node?: string, dataDir: string }): Promise<Multiaddr> {
  const explicit = init.node ?? process.env.DFS_NODE
  if (explicit != null && explicit !== '') return parseAddress(explicit)
  const path = join(init.dataDir, 'node.json')
  let info: { addrs?: unknown }
  try {
    info = JSON.parse(await readFile(path, 'utf8')) as { addrs?: unknown }
  } catch (err) {
    if ((err as NodeJS.ErrnoException)?.code === 'ENOENT') {
      throw new ConfigError(`no node to talk to: pass --node ADDR, set DFS_NODE, or start one with \`dfs node start\` (no ${path})`, { path })
    }
    throw new ConfigError(`cannot read ${path}: ${(err as Error).message}`, { path })
  }
  const addrs = Array.isArray(info.addrs) ? info.addrs.filter((a): a is string => typeof a === 'string') : []
  if (addrs.length === 0) throw new ConfigError(`${path} lists no addresses`, { path })
  return parseAddress(addrs[0])
}
