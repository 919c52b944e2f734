import type { ReplicationStatus } from '@dfs/api'
import { ClientCommand } from '../../cli/base-command.js'

export default class ClusterReplication extends ClientCommand<ReplicationStatus> {
  static override summary = 'Show how well the cluster\'s extents are replicated'
  static override description = `underReplicated counts extents with fewer live copies than the replication factor (a copy
is live while its node is a member not Failed for longer than --repair-delay-ms); missing counts
extents with no live copy; repairing counts copies being made now by the repair coordinator.`

  async run (): Promise<ReplicationStatus> {
    const { flags } = await this.parse(ClusterReplication)
    const client = await this.client(flags)
    const r = await client.call('cluster.replication', {})
    this.say(`replication factor ${r.replicationFactor}: ${r.extents} extents, ${r.underReplicated} under-replicated, ${r.missing} missing, ${r.repairing} repairing`)
    return { replicationFactor: r.replicationFactor, extents: r.extents, underReplicated: r.underReplicated, missing: r.missing, repairing: r.repairing }
  }
}
