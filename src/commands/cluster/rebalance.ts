import * as Flags from '@oclif/core/flags'
import type { RebalanceResult } from '@dfs/api'
import { ClientCommand } from '../../cli/base-command.js'
import { formatBytes } from '../../cli/progress.js'
import { MOVES_WAIT_MS_DEFAULT, waitForMoves } from '../../cli/wait-moves.js'

export default class ClusterRebalance extends ClientCommand<RebalanceResult> {
  static override summary = 'Move extent copies from the fullest to the emptiest nodes'
  static override description = `Plans moves with the cluster's rebalance policy once the imbalance of the healthy nodes passes
the threshold (cluster setting imbalanceThreshold, default 0.5), and records each in metadata. The
metadata leader executes them in two phases — copy and verify on the target, switch the replica set,
delete the source — resuming after any crash, and never onto a node past its fill limit.
--dry-run only shows the plan; --wait returns once every move is done.`

  static override flags = {
    'dry-run': Flags.boolean({ description: 'plan only, record nothing' }),
    wait: Flags.boolean({ description: 'wait until every recorded move is done' }),
    'wait-timeout': Flags.integer({ description: 'with --wait: give up waiting after this many ms (the moves go on)', default: MOVES_WAIT_MS_DEFAULT, min: 1 })
  }

  async run (): Promise<RebalanceResult> {
    const { flags } = await this.parse(ClusterRebalance)
    const client = await this.client(flags)
    const r = await client.call('cluster.rebalance', { dryRun: flags['dry-run'] })
    let completed = r.completed
    if (flags.wait && !flags['dry-run'] && r.moves.length > 0) {
      completed = await waitForMoves(client, r.moves, { waitMs: flags['wait-timeout'], json: this.jsonEnabled(), label: 'rebalance' })
    }
    const bytes = r.moves.reduce((sum, m) => sum + m.bytes, 0)
    this.say(r.planned === 0
      ? 'balanced: no moves planned'
      : `${flags['dry-run'] ? 'would move' : 'moves'} ${r.planned} copies (${formatBytes(bytes)})${flags.wait ? `, ${completed} completed` : ''}`)
    return { planned: r.planned, completed, moves: r.moves }
  }
}
