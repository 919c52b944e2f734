import * as Args from '@oclif/core/args'
import type { ClusterConfig } from '@dfs/api'
import { ClientCommand } from '../../../cli/base-command.js'

export default class ClusterConfigSet extends ClientCommand<ClusterConfig> {
  static override summary = 'Change a cluster setting'
  static override description = `replication-factor  copies of every extent (1–16; new writes use it at once, repair brings
                    existing extents up to it)
imbalance-threshold imbalance past which a rebalance plans moves (> 0, default 0.5)
fill-limit          fraction of a node's capacity past which it takes no new copy ((0, 1], default 0.9)
audit-retention     audit log entries kept (100–1,000,000, default 10,000); the oldest are dropped and the
                    chain stays verifiable from the last dropped entry
compression         zstd (default), lz4 or off: the codec new extents that compress are stored and sent
                    with; extents already written stay as they are
Policies are selected with "dfs cluster policy set".`

  static override args = {
    key: Args.string({ description: 'the setting', required: true, options: ['replication-factor', 'imbalance-threshold', 'fill-limit', 'audit-retention', 'compression'] }),
    value: Args.string({ description: 'its new value', required: true })
  }

  async run (): Promise<ClusterConfig> {
    const { args, flags } = await this.parse(ClusterConfigSet)
    const client = await this.client(flags)
    const c = await client.call('cluster.config.set', { key: args.key, value: args.value })
    this.say(`${args.key} = ${args.value}`)
    return c
  }
}
