import type { ClusterStatus } from '@dfs/api'
import { ClientCommand } from '../../cli/base-command.js'

export default class ClusterStatusCommand extends ClientCommand<ClusterStatus> {
  static override summary = 'Show the cluster id, the metadata leader and node health'

  async run (): Promise<ClusterStatus> {
    const { flags } = await this.parse(ClusterStatusCommand)
    const client = await this.client(flags)
    const s = await client.call('cluster.status', {})
    this.say(`cluster  ${s.clusterId}\nleader   ${s.leader ?? '(none)'}\nterm     ${s.term}\nnodes    ${s.nodes.total} total, ${s.nodes.healthy} healthy, ${s.nodes.suspected} suspected, ${s.nodes.failed} failed`)
    // a node that predates the field cannot have the hook on unless started with DFS_TEST_FAULTS=1
    const testFaults = s.testFaults === true
    if (testFaults) this.say('WARNING  this node runs with the test fault hook on (--test-faults): not for production')
    return { clusterId: s.clusterId, leader: s.leader, term: s.term, nodes: { total: s.nodes.total, healthy: s.nodes.healthy, suspected: s.nodes.suspected, failed: s.nodes.failed }, testFaults }
  }
}
