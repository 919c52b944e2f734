import { EVENTS_LIMIT_MAX, EVENTS_WAIT_MS_MAX } from '@dfs/api'
import type { ClusterEventsParams } from '@dfs/api'
import { defineMethod } from '../../net/rpc/define-method.js'
import { Action } from '../../security/index.js'
import type { RpcMethod } from '../../net/rpc/types.js'
import type { EventLog } from '../events.js'
import { integer, record } from './params.js'

/** `cluster.events` params, checked: integers in their ranges. */
export function parseEventsParams (raw: unknown): ClusterEventsParams {
  const p = record(raw ?? {}, 'cluster.events')
  const after = integer(p, 'after', { min: 0, max: Number.MAX_SAFE_INTEGER, optional: true })
  const waitMs = integer(p, 'waitMs', { min: 0, max: EVENTS_WAIT_MS_MAX, optional: true })
  const limit = integer(p, 'limit', { min: 1, max: EVENTS_LIMIT_MAX, optional: true })
  return {
    ...(after !== undefined ? { after } : {}),
    ...(waitMs !== undefined ? { waitMs } : {}),
    ...(limit !== undefined ? { limit } : {})
  }
}

/**
 * `cluster.events`: this node's event log, long-polled. The wait ends at the call's deadline (its
 * signal) as well, answering what is held then, so a caller whose deadline is shorter than `waitMs`
 * still gets an answer rather than DeadlineExceeded.
 */
export function eventMethods (events: EventLog): RpcMethod[] {
  return [
    defineMethod('cluster.events', {
      action: Action.ClusterRead,
      kind: 'unary',
      params: parseEventsParams,
      handle: async ({ params, signal }) => await events.poll({ ...params, signal })
    })
  ]
}
