/**
 * Compression of large extents off the event loop.
 *
 * A coordinator compresses each compressible extent of a put whole and then decodes it again to
 * prove the encoding (proveEncoding): for a 4 MiB extent of log-like text about 10 ms of zstd and
 * 5 ms of decoding. On the event loop that work stood between the node and the next bytes of the
 * put, the replicas' answers and every other request, and with the Noise decryption of the client's
 * stream it kept the coordinator's main thread busy while the machine's other core had room
 * (`npm run bench:replication`, log text row). Here it runs on worker threads: the sample that
 * decides whether an extent is worth compressing stays on the caller's thread (about 0.1 ms, and
 * incompressible extents end there), the whole compression and its proof go to a worker.
 *
 * Bounded: CODEC_WORKERS_MAX threads, started on first use, at most CODEC_JOBS_PER_WORKER_MAX jobs
 * queued on each; past that, or when a worker fails, the caller's thread does the job itself (the
 * same function, so the outcome is the same, only where it runs changes). A pool whose worker could
 * not start is not tried again in this process.
 */
import { availableParallelism } from 'node:os'
import { Worker } from 'node:worker_threads'
import { UnavailableError } from './errors.js'
import { compressWhole, compressionCandidate, proveEncoding, type CompressionSetting, type EncodedExtent, type ExtentCodec, type ProvenEncoding } from './codec.js'

/** Extents at least this large are compressed on a worker; smaller ones cost less than the hand-off. */
export const CODEC_OFFLOAD_BYTES_MIN = 256 * 1024

/** Most worker threads: one per core beyond the event loop's, at least one, at most this. */
export const CODEC_WORKERS_MAX = 4

/** Most jobs waiting on or running in one worker (each holds a copy of its extent). */
export const CODEC_JOBS_PER_WORKER_MAX = 8

/** A job as posted to a worker. */
export interface CodecJob {
  seq: number
  extentId: string
  codec: ExtentCodec
  bytes: Uint8Array
  /** Decode the result again and keep the bytes raw unless it gives them back (proveEncoding); else compressWhole. */
  prove: boolean
  /** `bytes` were moved to the worker (not copied): a raw answer moves them back. */
  moved: boolean
}

/** A worker's answer: the proven encoding, raw (with the codec refused, if one was), or an error. */
export type CodecReply =
  | { seq: number, codec: ExtentCodec, bytes: Uint8Array }
  | { seq: number, codec?: undefined, refused?: ExtentCodec, bytes?: Uint8Array }
  | { seq: number, error: string, bytes?: Uint8Array }

interface Pending {
  resolve: (r: ProvenEncoding) => void
  reject: (err: Error) => void
}

interface Slot {
  worker: Worker
  pending: Map<number, Pending>
  /** Whether the worker ever answered (a worker that fails before it does could not start). */
  answered: boolean
  /** Lost or stopped: out of the pool. */
  gone: boolean
}

/** Jobs done on workers and on the caller's thread, and workers lost (for tests and metrics). */
export const codecWorkerStats = { offloaded: 0, inline: 0, workerFailures: 0 }

const slots: Slot[] = []
let seq = 0
let disabled = false

function workerCount (): number {
  return Math.max(1, Math.min(CODEC_WORKERS_MAX, availableParallelism() - 1))
}

function workerUrl (): URL {
  // The worker always runs the built module: beside this one when built, in dist/ when this runs from
  // the sources (tests under tsx, whose loader Node 20 does not apply to a worker's entry module;
  // `npm test` builds first)
  return new URL(import.meta.url.endsWith('.ts') ? './dist/codec-worker.js' : './codec-worker.js', import.meta.url)
}

function start (): Slot {
  const slot: Slot = { worker: new Worker(workerUrl()), pending: new Map(), answered: false, gone: false }
  slot.worker.on('message', (reply: CodecReply) => {
    slot.answered = true
    const p = slot.pending.get(reply.seq)
    if (p === undefined) return
    slot.pending.delete(reply.seq)
    if (slot.pending.size === 0) slot.worker.unref()
    if ('error' in reply) p.reject(Object.assign(new Error(`codec worker: ${reply.error}`), { bytes: reply.bytes }))
    else if (reply.codec !== undefined) p.resolve({ codec: reply.codec, bytes: reply.bytes })
    else p.resolve({ bytes: reply.bytes ?? new Uint8Array(0), ...(reply.refused !== undefined ? { refused: reply.refused } : {}) })
  })
  const lost = (err: Error): void => {
    if (slot.gone) return
    slot.gone = true
    const i = slots.indexOf(slot)
    if (i >= 0) slots.splice(i, 1)
    codecWorkerStats.workerFailures++
    if (!slot.answered) disabled = true
    for (const p of slot.pending.values()) p.reject(err)
    slot.pending.clear()
  }
  slot.worker.on('error', lost)
  slot.worker.on('exit', (code) => { lost(new Error(`codec worker exited with code ${code}`)) })
  // an idle worker never keeps the process alive, one with a job does (like any pending I/O); set
  // after the listeners, since adding a 'message' listener refs the worker's port again
  slot.worker.unref()
  return slot
}

/** The least busy worker with room for a job, starting one if the pool is not full; undefined: none. */
function pick (): Slot | undefined {
  if (disabled) return undefined
  let best: Slot | undefined
  for (const s of slots) if (best === undefined || s.pending.size < best.pending.size) best = s
  if ((best === undefined || best.pending.size > 0) && slots.length < workerCount()) {
    try {
      best = start()
      slots.push(best)
    } catch {
      disabled = true
      return undefined
    }
  }
  return best !== undefined && best.pending.size < CODEC_JOBS_PER_WORKER_MAX ? best : undefined
}

async function offload (slot: Slot, extentId: string, codec: ExtentCodec, bytes: Uint8Array, prove: boolean, move = false): Promise<ProvenEncoding> {
  const job: CodecJob = { seq: ++seq, extentId, codec, bytes, prove, moved: move }
  return await new Promise<ProvenEncoding>((resolve, reject) => {
    if (slot.pending.size === 0) slot.worker.ref()
    slot.pending.set(job.seq, { resolve, reject })
    // structured clone copies the extent (~0.1 ms per MiB): the caller keeps hashing and sending it;
    // moved, its memory changes hands instead (the caller gave it up)
    try {
      slot.worker.postMessage(job, move ? [bytes.buffer as ArrayBuffer] : [])
    } catch (err) {
      slot.pending.delete(job.seq)
      if (slot.pending.size === 0) slot.worker.unref()
      // not moved (Node refuses to move some memory): the caller still has its bytes
      reject(Object.assign(err as Error, { bytes }))
    }
  })
}

/** Whether `bytes` are the whole of an ArrayBuffer of their own, which can move to or from a worker. */
export function movable (bytes: Uint8Array): boolean {
  return bytes.buffer instanceof ArrayBuffer && bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength
}

/**
 * The form extent `id`'s `bytes` are sent to their copies in under `setting`: as compressExtent
 * decides, with the encoding proven to decode to `bytes` (proveEncoding). Large compressible extents
 * are compressed on a worker thread; everything else, and anything a worker cannot take, here.
 * `onWorkerFailure` hears of a worker lost (the job is then done here).
 */
export async function encodeForCopies (id: string, setting: CompressionSetting, bytes: Uint8Array,
  onWorkerFailure: (err: Error) => void = () => {}): Promise<ProvenEncoding> {
  const codec = compressionCandidate(setting, bytes)
  if (codec === undefined) return { bytes }
  const slot = bytes.byteLength >= CODEC_OFFLOAD_BYTES_MIN ? pick() : undefined
  if (slot !== undefined) {
    try {
      const out = await offload(slot, id, codec, bytes, true)
      codecWorkerStats.offloaded++
      return out.codec === undefined ? { bytes, ...(out.refused !== undefined ? { refused: out.refused } : {}) } : out
    } catch (err) {
      onWorkerFailure(err as Error)
    }
  }
  codecWorkerStats.inline++
  return proveEncoding(id, codec, bytes)
}

/**
 * The form a client sends `bytes` in under `setting` (see extent-pieces.ts): as compressExtent
 * decides, on a worker thread when they are large, without the proof — the node that receives them
 * decodes them anyway, and that decoding is the proof.
 */
export async function compressForSending (setting: CompressionSetting, bytes: Uint8Array): Promise<EncodedExtent> {
  const codec = compressionCandidate(setting, bytes)
  if (codec === undefined) return { bytes }
  const slot = bytes.byteLength >= CODEC_OFFLOAD_BYTES_MIN ? pick() : undefined
  if (slot !== undefined) {
    // bytes that own their memory move to the worker and back, not copied each way: each copy was
    // external memory the sender's V8 then collected (major GCs were a fifth of a client's CPU)
    const move = movable(bytes)
    try {
      const out = await offload(slot, 'piece', codec, bytes, false, move)
      codecWorkerStats.offloaded++
      return out.codec === undefined ? { bytes: move ? out.bytes : bytes } : out
    } catch (err) {
      // a lost worker: done here, with the bytes it gave back if they moved (a worker that died
      // with them took them: the caller's body fails, as any failed read would)
      if (move) {
        const back = (err as { bytes?: Uint8Array }).bytes
        if (back === undefined) throw new UnavailableError('a codec worker was lost with the bytes it was given', { reason: (err as Error)?.message })
        bytes = back
      }
    }
  }
  codecWorkerStats.inline++
  return compressWhole(codec, bytes)
}

/** Stops the pool's workers (tests; a process exits without it, the workers being unref'd). */
export async function stopCodecWorkers (): Promise<void> {
  const all = slots.splice(0)
  for (const s of all) {
    s.gone = true
    for (const p of s.pending.values()) p.reject(new Error('codec workers stopped'))
    s.pending.clear()
  }
  await Promise.all(all.map(async (s) => { await s.worker.terminate() }))
}
