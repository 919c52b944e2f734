import * as Args from '@oclif/core/args'
import type { RemovedNode } from '@dfs/api'
import { ClientCommand } from '../../../cli/base-command.js'

export default class ClusterNodesRemove extends ClientCommand<RemovedNode> {
  static override summary = 'Remove a member from the cluster (Admin): out of the Raft group, then out of the member list'
  static override args = {
    node: Args.string({ required: true, description: 'PeerId or name of the member' })
  }

  async run (): Promise<RemovedNode> {
    const { args, flags } = await this.parse(ClusterNodesRemove)
    const client = await this.client(flags)
    const r = await client.call('cluster.nodes.remove', { node: args.node })
    this.say(`removed ${r.name} (${r.id})`)
    return { id: r.id, name: r.name }
  }
}
