/**
 * Renames across metadata groups (see TRANSFERS_MAX in @dfs/api): the coordinator that moves one
 * file, and the pass that ends transfers whose coordinator died.
 */
import { randomUUID } from 'node:crypto'
import { logger } from '@libp2p/logger'
import { STAGE_BATCH_MAX, TRANSFER_AGE_MS_MAX, type CallOptions, type ExtentRecord, type FileRecord, type MetadataService } from '@dfs/api'

const log = logger('dfs:node:transfers')

/** How long the steps that end a failed transfer may take (the caller's signal may be aborted already). */
const SETTLE_TIMEOUT_MS = 30_000
/** Transfers one pass of resolveStaleTransfers ends at most (the next pass takes the rest). */
export const STALE_TRANSFERS_PER_PASS_MAX = 64

/**
 * Named points of a transfer where a test may crash the coordinator (`dfs node start --test-faults`):
 * after its extents are staged in the target, and after the target accepted it.
 */
export type TransferPoint = 'transfer:staged' | 'transfer:accepted'

export interface TransferInit {
  metadata: MetadataService
  /** The coordinator: this node. */
  nodeId: string
  /** Called at each TransferPoint (tests crash the process there). */
  reached?: (point: TransferPoint) => void
}

/**
 * Moves the file at `from` to `to`, in another metadata group, without moving bytes: BeginTransfer
 * in the source, the extent records staged in the target, AcceptTransfer there, FinishTransfer in
 * the source. Resolves with the file as it is at `to` and the extents of a file it replaced there. When the target refuses (a conflict, a quota),
 * the transfer is aborted (the file stays at `from`) and the target's error is thrown. When a step's
 * outcome is unknown (a timeout, a lost leader), the transfer is settled: RefuseTransfer asks the
 * target, which fences it unless it accepted, and the source is finished or aborted to match.
 */
export async function transferFile (init: TransferInit, from: string, to: string, options: CallOptions & { replace?: boolean } = {}): Promise<{ file: FileRecord, freed: ExtentRecord[] }> {
  const { metadata, nodeId } = init
  const tx = randomUUID()
  const createdAtMs = Date.now()
  const signal = options.signal
  let begun: FileRecord | undefined
  try {
    const result = await metadata.propose({ type: 'BeginTransfer', tx, from, to, node: nodeId, createdAtMs }, { signal })
    begun = result.file
    if (begun === undefined) throw new Error(`metadata invariant broken: BeginTransfer of ${from} returned no file`)
    const file = begun
    for (let i = 0; i < file.extents.length; i += STAGE_BATCH_MAX) {
      const ids = file.extents.slice(i, i + STAGE_BATCH_MAX)
      // the source's records, frozen since BeginTransfer: what the target gets is what they are
      const records = await metadata.read((v) => ids.map((id) => v.getExtent(id)), { scope: { paths: [from] }, signal })
      const missing = ids.find((id, j) => records[j] === undefined)
      if (missing !== undefined) throw new Error(`metadata invariant broken: frozen ${from} lost extent ${missing}`)
      await metadata.propose({ type: 'StageExtents', stage: tx, path: to, node: nodeId, extents: records as ExtentRecord[], createdAtMs, transfer: from }, { signal })
    }
    init.reached?.('transfer:staged')
    const accepted = await metadata.propose({
      type: 'AcceptTransfer',
      tx,
      from,
      to,
      size: file.size,
      mtimeMs: file.mtimeMs,
      version: file.version,
      replace: options.replace === true,
      createdAtMs,
      ...(file.meta !== undefined ? { meta: file.meta } : {})
    }, { signal })
    init.reached?.('transfer:accepted')
    await finish(metadata, tx, from, to)
    if (accepted.file === undefined) throw new Error(`metadata invariant broken: AcceptTransfer of ${to} returned no file`)
    return { file: accepted.file, freed: accepted.freed ?? [] }
  } catch (err) {
    // BeginTransfer refused for sure: nothing to end
    if (begun === undefined && isRefusal(err)) throw err
    const settled = await settle(metadata, { tx, from, to }).catch((e: Error) => {
      log.error('transfer %s of %s to %s failed (%s) and is not settled yet (%s): the stale transfer pass ends it', tx, from, to, (err as Error).message, e.message)
      return undefined
    })
    // accepted after all (only its answer was lost): the rename happened
    if (settled === true && begun !== undefined) {
      // (a file it replaced is left to the orphan sweep: its list of freed extents was in the lost answer)
      const now = await metadata.read((v) => v.getFile(to), { scope: { paths: [to] } }).catch(() => undefined)
      if (now !== undefined) return { file: now, freed: [] }
    }
    throw err
  }
}

/** Errors a state machine answers with: the operation certainly did not apply (any other may have). */
const REFUSALS = new Set(['NotFound', 'AlreadyExists', 'InvalidArgument', 'IsADirectory', 'NotADirectory', 'FailedPrecondition', 'QuotaExceeded', 'WrongShard'])

function isRefusal (err: unknown): boolean {
  return REFUSALS.has((err as Error | undefined)?.name ?? '')
}

/** Ends an accepted transfer: the source drops its file (freeing nothing), then the target forgets the outcome. */
async function finish (metadata: MetadataService, tx: string, from: string, to: string): Promise<void> {
  const signal = AbortSignal.timeout(SETTLE_TIMEOUT_MS)
  try {
    await metadata.propose({ type: 'FinishTransfer', tx, from }, { signal })
  } catch (err) {
    if ((err as Error).name !== 'NotFound') throw err
  }
  await forget(metadata, tx, to, signal)
}

async function forget (metadata: MetadataService, tx: string, to: string, signal: AbortSignal): Promise<void> {
  await metadata.propose({ type: 'ForgetTransfer', tx, to }, { signal }).catch((err: Error) => {
    if (err.name !== 'NotFound') log('transfer %s: the target keeps its outcome for now (%s)', tx, err.message)
  })
}

/**
 * Ends transfer `tx` whatever state it is in: RefuseTransfer in the target fences it unless it was
 * accepted; then the source finishes (accepted) or aborts it, and the target forgets the outcome.
 * Resolves with whether it was accepted.
 */
export async function settle (metadata: MetadataService, t: { tx: string, from: string, to: string }): Promise<boolean> {
  const signal = AbortSignal.timeout(SETTLE_TIMEOUT_MS)
  const fenced = await metadata.propose({ type: 'RefuseTransfer', tx: t.tx, from: t.from, to: t.to, createdAtMs: Date.now() }, { signal })
  if (fenced.accepted === true) {
    await finish(metadata, t.tx, t.from, t.to)
    return true
  }
  try {
    await metadata.propose({ type: 'AbortTransfer', tx: t.tx, from: t.from }, { signal })
  } catch (err) {
    if ((err as Error).name !== 'NotFound') throw err
  }
  await forget(metadata, t.tx, t.to, signal)
  return false
}

/**
 * Ends transfers whose coordinator is gone: those this node coordinated (`mine`: at start-up, when
 * it certainly runs none) and anyone's older than `ageMs`; and forgets targets' outcomes older than
 * `ageMs` whose source no longer has the transfer. At most STALE_TRANSFERS_PER_PASS_MAX of each.
 * Resolves with the number of transfers ended.
 */
export async function resolveStaleTransfers (metadata: MetadataService,
  options: { nodeId: string, mine?: boolean, ageMs?: number, now?: () => number, signal?: AbortSignal }): Promise<number> {
  const ageMs = options.ageMs ?? TRANSFER_AGE_MS_MAX
  const now = (options.now ?? Date.now)()
  // linearizable: at start-up this node's applied state may not yet hold its own last transfers
  const view = await metadata.read((v) => v.transfers?.(), { scope: { paths: ['/'] }, signal: options.signal })
  if (view === undefined) return 0
  let ended = 0
  const stale = view.out.filter((t) => (options.mine === true && t.node === options.nodeId) || now - t.createdAtMs > ageMs)
  for (const t of stale.slice(0, STALE_TRANSFERS_PER_PASS_MAX)) {
    try {
      const accepted = await settle(metadata, t)
      ended++
      log('ended transfer %s of %s to %s (its coordinator %s is gone): %s', t.tx, t.from, t.to, t.node, accepted ? 'moved' : 'left where it was')
    } catch (err) {
      log('could not end transfer %s of %s: %s', t.tx, t.from, (err as Error).message)
    }
  }
  const outcomes = view.in.filter((o) => now - o.createdAtMs > ageMs).slice(0, STALE_TRANSFERS_PER_PASS_MAX)
  for (const o of outcomes) {
    try {
      const open = await metadata.read((v) => v.transfers?.().out.some((t) => t.tx === o.tx) ?? false, { scope: { paths: [o.from] } })
      if (!open) await forget(metadata, o.tx, o.to, AbortSignal.timeout(SETTLE_TIMEOUT_MS))
    } catch (err) {
      log('could not check transfer %s: %s', o.tx, (err as Error).message)
    }
  }
  return ended
}
