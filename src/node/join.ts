import { logger } from '@libp2p/logger'
import { NodeUnreachableError, WrongClusterError, type JoinRequest, type JoinResult } from '@dfs/api'
import { RpcClient } from '../net/rpc/client.js'
import { identifyNonce, verifyClusterProof } from '../security/cluster-key.js'
import { parseJoinToken } from '../security/join-token.js'
import type { Host } from '../net/host.js'
import type { Multiaddr } from '@multiformats/multiaddr'

const log = logger('dfs:node:join')

/** Deadline of one join request (the member commits a metadata change and a membership change). */
const JOIN_CALL_TIMEOUT_MS = 30_000
/** Deadline of the proof a member gives of its cluster before it is sent the token. */
const IDENTIFY_CALL_TIMEOUT_MS = 10_000

export interface JoinReply extends JoinResult {
  /** The address that admitted this node. */
  via: string
}

/**
 * Asks the members at `peers`, in order, to admit this node. When the token pins its cluster, each
 * member must first prove that cluster's key (`cluster.identify`, signed for this connection) or it
 * is never sent the token: a member that cannot is skipped, and WrongCluster ends the attempt when
 * no member proved it. A refused token ends the attempt at once (every member would refuse it
 * alike); an unreachable member passes the request to the next.
 */
export async function joinCluster (host: Host, peers: Multiaddr[], request: JoinRequest): Promise<JoinReply> {
  // a malformed token is this node's configuration error: refused before anything is sent
  const { pin } = parseJoinToken(request.token)
  const failures: Array<{ addr: string, error: string }> = []
  let impostors = 0
  for (const target of peers) {
    const client = new RpcClient({ host, target })
    try {
      if (pin !== undefined) {
        const nonce = identifyNonce()
        const proof = await client.call('cluster.identify', { nonce }, { timeoutMs: IDENTIFY_CALL_TIMEOUT_MS })
        const server = client.remotePeer?.toString()
        if (server === undefined) throw new Error('invariant: a call that answered knows its remote peer')
        verifyClusterProof(proof, { nonce, caller: host.peerId.toString(), server, pin })
      }
      const reply = await client.call('cluster.join', request, { timeoutMs: JOIN_CALL_TIMEOUT_MS })
      return { ...reply, via: target.toString() }
    } catch (err) {
      const name = (err as Error)?.name
      // Unavailable: a member that does not know the cluster key yet (it is still catching up)
      if (name !== 'NodeUnreachable' && name !== 'WrongCluster' && name !== 'Unavailable') throw err
      log('%s: %s', target.toString(), (err as Error).message)
      if (name === 'WrongCluster') impostors += 1
      failures.push({ addr: target.toString(), error: `${name}: ${(err as Error).message}` })
    } finally {
      await client.close()
    }
  }
  if (impostors > 0) {
    throw new WrongClusterError(`no member proved the cluster the join token names (tried ${peers.length}; the token was sent to none): ` +
      failures.map((f) => `${f.addr}: ${f.error}`).join('; '), { failures })
  }
  throw new NodeUnreachableError(`no member could be reached to join the cluster (tried ${peers.length})`, { failures })
}
