import type { CallOptions, ExtentRecord, PeerIdString } from '@dfs/api'
import type { ReplicationContext } from './context.js'

/**
 * The read path: which copy to try first. Reads, and every copy repair, scrub and moves make, take
 * their sources in this order. It logs nothing of its own: ExtentPeers.read reports each attempt.
 */
export class ReadPath {
  readonly #ctx: ReplicationContext

  constructor (ctx: ReplicationContext) {
    this.#ctx = ctx
  }

  /** A verified copy of `extent`, tried in `order`; a corrupt local copy is rewritten from the good one (ExtentPeers.read). */
  async read (extent: ExtentRecord, options: CallOptions = {}): Promise<Uint8Array> {
    return await this.#ctx.init.peers.read(extent, { ...options, order: this.order(extent.replicas) })
  }

  /** Local first, then healthy replicas in this node's region, other healthy, suspected, failed. */
  order (replicas: PeerIdString[]): PeerIdString[] {
    const { init } = this.#ctx
    const me = init.nodeId
    const nodes = new Map(init.cluster.nodes().map((n) => [n.id, n]))
    const region = nodes.get(me)?.region
    const rank = (id: PeerIdString): number => {
      if (id === me) return 0
      const n = nodes.get(id)
      if (n === undefined) return 5
      if (n.health === 'healthy') return n.region === region ? 1 : 2
      return n.health === 'suspected' ? 3 : 4
    }
    return replicas.map((id, i) => ({ id, i, r: rank(id) })).sort((a, b) => a.r - b.r || a.i - b.i).map((x) => x.id)
  }
}
