import * as Args from '@oclif/core/args'
import * as Flags from '@oclif/core/flags'
import { DeadlineExceededError } from '@dfs/api'
import type { ClusterDrainResult, ClusterUndrainResult } from '@dfs/api'
import { ClientCommand } from '../../cli/base-command.js'
import { Progress } from '../../cli/progress.js'
import { MOVES_WAIT_MS_DEFAULT } from '../../cli/wait-moves.js'

/** How often --wait asks again (each call also plans moves for copies whose move was cancelled). */
const POLL_MS = 1000

type Drained = ClusterDrainResult | ClusterUndrainResult

export default class ClusterDrain extends ClientCommand<Drained> {
  static override summary = 'Move every extent copy off a node before it is removed'
  static override description = `Marks the node draining (it takes no new copies) and records a move for each copy it holds, to
a node the placement policy picks; the metadata leader executes the moves like rebalance moves.
With --wait the command returns once no extent lists the node; then "dfs cluster nodes remove NODE".
--cancel stops a drain: the node takes new copies again and the moves off it still recorded are
cancelled (copies already moved stay where they are).`

  static override args = {
    node: Args.string({ description: 'the node\'s PeerId or name', required: true })
  }

  static override flags = {
    wait: Flags.boolean({ description: 'wait until no extent has a copy on the node', exclusive: ['cancel'] }),
    cancel: Flags.boolean({ description: 'stop draining the node and cancel its pending moves', exclusive: ['wait'] }),
    'wait-timeout': Flags.integer({ description: 'with --wait: give up waiting after this many ms (the moves go on)', default: MOVES_WAIT_MS_DEFAULT, min: 1 })
  }

  async run (): Promise<Drained> {
    const { args, flags } = await this.parse(ClusterDrain)
    const client = await this.client(flags)
    if (flags.cancel) {
      const u = await client.call('cluster.undrain', { node: args.node })
      this.say(`${u.name} (${u.node}): no longer draining, ${u.cancelled} pending moves cancelled`)
      return u
    }
    const first = await client.call('cluster.drain', { node: args.node })
    let r = first
    const moves = [...first.moves]
    if (flags.wait) {
      const progress = new Progress('drain', first.remaining, { json: this.jsonEnabled() })
      const deadline = Date.now() + flags['wait-timeout']
      while (r.remaining > 0) {
        if (Date.now() >= deadline) {
          progress.finish()
          throw new DeadlineExceededError(`${r.remaining} extents still have a copy on ${first.node} after ${flags['wait-timeout']} ms (the moves go on)`,
            { node: first.node, remaining: r.remaining })
        }
        await new Promise((resolve) => setTimeout(resolve, POLL_MS))
        const before = r.remaining
        r = await client.call('cluster.drain', { node: args.node })
        moves.push(...r.moves)
        if (r.remaining < before) progress.add(before - r.remaining)
      }
      progress.finish()
    }
    const completed = flags.wait && moves.length > 0
      ? (await client.call('cluster.rebalance.progress', { moves: moves.map(({ extent, from, to }) => ({ extent, from, to })) })).completed
      : first.completed
    this.say(`${first.name} (${first.node}): ${moves.length} moves recorded, ${r.remaining} extents left on it`)
    return { node: first.node, name: first.name, planned: moves.length, completed, moves, remaining: r.remaining }
  }
}
