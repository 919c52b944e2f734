import * as Args from '@oclif/core/args'
import type { PolicyKind, PolicySelection } from '@dfs/api'
import { ClientCommand } from '../../../cli/base-command.js'

export default class ClusterPolicySet extends ClientCommand<PolicySelection> {
  static override summary = 'Select the cluster\'s placement or rebalance policy'
  static override description = `Policies are plugins: install one with "dfs plugins install NAME" (or "dfs plugins link DIR")
on the nodes, then select it here. The node that receives the command refuses a policy it does not
have installed. Placement decides where the copies of new and repaired extents go.`

  static override args = {
    kind: Args.string({ description: 'placement or rebalance', required: true, options: ['placement', 'rebalance'] }),
    name: Args.string({ description: 'the policy\'s name (e.g. default, region)', required: true })
  }

  async run (): Promise<PolicySelection> {
    const { args, flags } = await this.parse(ClusterPolicySet)
    const client = await this.client(flags)
    const r = await client.call('cluster.policy.set', { kind: args.kind as PolicyKind, name: args.name })
    this.say(`${r.kind} policy: ${r.name}`)
    return r
  }
}
