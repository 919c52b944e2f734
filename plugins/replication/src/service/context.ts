import { CLUSTER_CONFIG_DEFAULTS } from '@dfs/api'
import type {
  ClusterConfig, ClusterNode, ExtentRecord, Logger, MemberRecord, ReplicationEvent, ReplicationServiceInit
} from '@dfs/api'

/** Settings of the replication service beyond ReplicationServiceInit; defaults in constants.ts. */
export interface ReplicationTuning {
  repairEveryMs?: number
  repairsInFlightMax?: number
  repairBytesPerSecond?: number
  scrubEveryMs?: number
  scrubBytesPerSecond?: number
  releaseGraceMs?: number
  moveEveryMs?: number
  movesInFlightMax?: number
  moveBytesPerSecond?: number
}

/** What the facade gives each of its modules; one instance, shared, for the service's lifetime. */
export interface ReplicationContext {
  readonly init: ReplicationServiceInit
  /** Every field set and checked (finite, ≥ 0) by the facade. */
  readonly tuning: Readonly<Required<ReplicationTuning>>
  /** How long a member stays Failed before its copies stop counting as live. */
  readonly repairDelayMs: number
  /** Aborts once the service stops: background calls take it, and no module starts work or sets a timer after. */
  readonly stopping: AbortSignal
}

/**
 * The logger for one module: `parent`'s namespace with `:scope` appended, as @libp2p/logger's
 * `newScope` makes it (the node passes `logger('dfs:replication')`, so the repair module logs as
 * `dfs:replication:repair`). A logger without `newScope` (a test's) is shared as it is.
 */
export function scopedLogger (parent: Logger, scope: string): Logger {
  const { newScope } = parent as Logger & { newScope?: (scope: string) => Logger }
  return typeof newScope === 'function' ? newScope.call(parent, scope) : parent
}

/** Tells the node what happened (ReplicationServiceInit.onEvent), if it listens; a listener that throws is logged, never rethrown. */
export function report (ctx: ReplicationContext, event: ReplicationEvent, log: Logger): void {
  const onEvent = ctx.init.onEvent
  if (onEvent === undefined) return
  try {
    onEvent(event)
  } catch (err) {
    log('reporting %s: %s', event.kind, (err as Error).message)
  }
}

/** An error as an event names it: its name (a DfsError's condition) and its message. */
export function errorFields (err: unknown): { error: string, message: string } {
  const e = err as Error | undefined
  return { error: typeof e?.name === 'string' && e.name !== '' ? e.name : 'Error', message: typeof e?.message === 'string' ? e.message : String(err) }
}

/** The cluster configuration as this node last applied it. */
export function clusterConfig (init: ReplicationServiceInit): ClusterConfig {
  const m = init.metadata
  return m.staleRead?.((v) => v.config()) ?? CLUSTER_CONFIG_DEFAULTS
}

/**
 * The cluster as the policies see it, with the configured fill limit; a draining member shows as
 * suspected, so no policy gives it a copy while its own copies still count.
 */
export function policyNodes (init: ReplicationServiceInit, config: ClusterConfig, members?: MemberRecord[]): ClusterNode[] {
  const list = members ?? init.metadata.staleRead?.((v) => v.members()) ?? []
  const draining = new Set(list.filter((m) => m.draining === true).map((m) => m.id))
  return init.cluster.nodes().map((n) => ({
    ...n,
    fillLimit: config.fillLimit,
    ...(draining.has(n.id) && n.health === 'healthy' ? { health: 'suspected' as const } : {})
  }))
}

/** This node is the cluster's repair and move coordinator: the leader of the metadata system group. */
export function isCoordinator (init: ReplicationServiceInit): boolean {
  return init.metadata.status().leader === init.nodeId
}

/**
 * Runs `run` over `todo` in order with `inFlight` workers, at most `bytesPerSecond` (by `size`)
 * overall, while this node is still the coordinator (the system group's leader) and not stopping.
 */
export async function coordinatorPool<T> (ctx: ReplicationContext, todo: T[], inFlight: number, bytesPerSecond: number,
  size: (item: T) => number, run: (item: T) => Promise<void>): Promise<void> {
  const started = Date.now()
  let bytes = 0
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < todo.length && !ctx.stopping.aborted && isCoordinator(ctx.init)) {
      const item = todo[next++]
      await run(item)
      bytes += size(item)
      const wait = started + (bytes / Math.max(1, bytesPerSecond)) * 1000 - Date.now()
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait).unref?.())
    }
  }
  await Promise.all(Array.from({ length: Math.max(1, inFlight) }, worker))
}

/** Every extent record in a metadata view. */
export function allExtents (v: { extentIds: () => Iterable<string>, getExtent: (id: string) => ExtentRecord | undefined }): ExtentRecord[] {
  return [...v.extentIds()].map((id) => v.getExtent(id)).filter((e): e is ExtentRecord => e !== undefined)
}

/** Resolves after `ms`, or rejects with the signal's reason once it aborts. */
export async function sleep (ms: number, signal?: AbortSignal): Promise<void> {
  signal?.throwIfAborted()
  await new Promise<void>((resolve, reject) => {
    const onAbort = (): void => { clearTimeout(t); reject(signal?.reason as Error) }
    const t = setTimeout(() => { signal?.removeEventListener('abort', onAbort); resolve() }, ms)
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}
