import { logger } from '@libp2p/logger'
import { NodeUnreachableError, type JoinRequest, type JoinResult } from '@dfs/api'
import { RpcClient } from '../net/rpc/client.js'
import type { Host } from '../net/host.js'
import type { Multiaddr } from '@multiformats/multiaddr'

const log = logger('dfs:node:join')

/** Deadline of one join request (the member commits a metadata change and a membership change). */
const JOIN_CALL_TIMEOUT_MS = 30_000

export interface JoinReply extends JoinResult {
  /** The address that admitted this node. */
  via: string
}

/**
 * Asks the members at `peers`, in order, to admit this node. A refused token ends the attempt at
 * once (every member would refuse it alike); an unreachable member passes the request to the next.
 */
export async function joinCluster (host: Host, peers: Multiaddr[], request: JoinRequest): Promise<JoinReply> {
  const failures: Array<{ addr: string, error: string }> = []
  for (const target of peers) {
    const client = new RpcClient({ host, target })
    try {
      const reply = await client.call('cluster.join', request, { timeoutMs: JOIN_CALL_TIMEOUT_MS })
      return { ...reply, via: target.toString() }
    } catch (err) {
      if ((err as Error)?.name !== 'NodeUnreachable') throw err
      log('%s did not answer: %s', target.toString(), (err as Error).message)
      failures.push({ addr: target.toString(), error: (err as Error).message })
    } finally {
      await client.close()
    }
  }
  throw new NodeUnreachableError(`no member could be reached to join the cluster (tried ${peers.length})`, { failures })
}
