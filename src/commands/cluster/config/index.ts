import type { ClusterConfig } from '@dfs/api'
import { ClientCommand } from '../../../cli/base-command.js'

export default class ClusterConfigShow extends ClientCommand<ClusterConfig> {
  static override summary = 'Show the cluster settings (replication factor, policies, thresholds)'

  async run (): Promise<ClusterConfig> {
    const { flags } = await this.parse(ClusterConfigShow)
    const client = await this.client(flags)
    const c = await client.call('cluster.config', {})
    for (const [k, v] of Object.entries(c)) this.say(`${k.padEnd(20)} ${String(v)}`)
    return c
  }
}
