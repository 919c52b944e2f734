import type { ClusterNodesResult } from '@dfs/api'
import { ClientCommand } from '../../../cli/base-command.js'

export default class ClusterNodes extends ClientCommand<ClusterNodesResult> {
  static override summary = 'List the cluster members with their health, region and addresses'

  async run (): Promise<ClusterNodesResult> {
    const { flags } = await this.parse(ClusterNodes)
    const client = await this.client(flags)
    const r = await client.call('cluster.nodes', {})
    for (const n of r.nodes) {
      this.say(`${n.id}  ${n.name.padEnd(12)} ${n.region.padEnd(10)} ${n.health.padEnd(9)} ${(n.voter ? 'voter' : 'learner').padEnd(7)} ${n.draining ? 'draining ' : ''}${n.addrs.join(',')}`)
    }
    return {
      nodes: r.nodes.map((n) => ({
        id: n.id,
        name: n.name,
        addrs: n.addrs,
        region: n.region,
        health: n.health,
        voter: n.voter,
        draining: n.draining === true,
        // older nodes do not report these
        usedBytes: n.usedBytes ?? 0,
        capacityBytes: n.capacityBytes ?? null
      }))
    }
  }
}
