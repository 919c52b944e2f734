import { logger } from '@libp2p/logger'
import { Action } from '../security/index.js'
import type { Host } from '../net/host.js'
import { defineMethod } from '../net/rpc/define-method.js'
import type { RpcMethod } from '../net/rpc/types.js'
import type { ConnectionGater } from '@libp2p/interface'
import { InvalidArgumentError } from '@dfs/api'

const log = logger('dfs:node:faults')

/**
 * Test-only fault injection, enabled by DFS_TEST_FAULTS=1 when the node starts (never otherwise):
 * a network partition made by refusing, and hanging up, every connection to chosen peers. Each side
 * of a partition blocks the other side, as a real network split would.
 */
export class PartitionFault {
  readonly #blocked = new Set<string>()
  #host: Host | undefined

  /** The gater the host is built with: it consults the current blocked set on every connection. */
  gater (): ConnectionGater {
    const blocked = (peer: { toString: () => string }): boolean => this.#blocked.has(peer.toString())
    return {
      denyDialPeer: async (peer) => blocked(peer),
      denyInboundEncryptedConnection: async (peer) => blocked(peer),
      denyOutboundEncryptedConnection: async (peer) => blocked(peer)
    }
  }

  attach (host: Host): void {
    this.#host = host
  }

  /** Blocks exactly `peers` (an empty list heals) and hangs up existing connections to them. */
  async block (peers: string[]): Promise<void> {
    this.#blocked.clear()
    for (const p of peers) this.#blocked.add(p)
    log('blocking %o', peers)
    const host = this.#host
    if (host == null) return
    await Promise.all(host.getConnections()
      .filter((c) => this.#blocked.has(c.remotePeer.toString()))
      .map(async (c) => { await c.close().catch(() => { c.abort(new Error('partitioned')) }) }))
  }

  methods (): RpcMethod[] {
    return [defineMethod('test.partition', {
      action: Action.ClusterAdmin,
      kind: 'unary',
      params: (raw) => {
        const block = (raw as { block?: unknown } | null)?.block
        if (!Array.isArray(block) || block.length > 64 || block.some((p) => typeof p !== 'string' || p.length > 128)) {
          throw new InvalidArgumentError('test.partition takes { block: PeerId[] }')
        }
        return { block: block as string[] }
      },
      handle: async ({ params }) => {
        await this.block(params.block)
        return { blocked: params.block }
      }
    })]
  }
}
