import { DeadlineExceededError } from '@dfs/api'
import type { RebalanceMove } from '@dfs/api'
import type { DfsClient } from '../client/index.js'
import { Progress } from './progress.js'

/** How often a waiting command asks its node how far the moves have got. */
const POLL_MS = 500

/**
 * Polls `cluster.rebalance.progress` until none of `moves` is pending, drawing a bar (bytes of the
 * moves switched) on a terminal. The wait itself has a deadline of `waitMs`; each poll has the
 * client's. Resolves with the moves completed.
 */
/** How long `--wait` follows recorded moves before it gives up by default (the moves go on). */
export const MOVES_WAIT_MS_DEFAULT = 30 * 60_000

export async function waitForMoves (client: DfsClient, moves: RebalanceMove[], options: { waitMs: number, json: boolean, label: string }): Promise<number> {
  const total = moves.reduce((sum, m) => sum + m.bytes, 0)
  const progress = new Progress(options.label, total, { json: options.json })
  const deadline = Date.now() + options.waitMs
  const list = moves.map(({ extent, from, to }) => ({ extent, from, to }))
  let shown = 0
  for (;;) {
    const p = await client.call('cluster.rebalance.progress', { moves: list })
    const bytes = moves.length === 0 ? 0 : Math.round(total * (p.completed / moves.length))
    if (bytes > shown) { progress.add(bytes - shown); shown = bytes }
    if (p.pending === 0) {
      progress.finish()
      return p.completed
    }
    if (Date.now() >= deadline) {
      progress.finish()
      throw new DeadlineExceededError(`${p.pending} of ${moves.length} moves still pending after ${options.waitMs} ms (they go on in the background)`,
        { pending: p.pending, completed: p.completed, waitMs: options.waitMs })
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_MS))
  }
}
