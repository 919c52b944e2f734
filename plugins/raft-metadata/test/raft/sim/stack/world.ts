/**
 * The simulated world the production Raft stack runs in: virtual time (an event heap), a Clock per
 * node process, a disk per node that loses what was not fsync'd, and a network of one-way frame
 * streams. Every random choice comes from seeded Rngs, so a seed replays the same run.
 */
import type { Clock, TimerHandle } from '../../../../src/group/clock.js'
import type { BatchOp, LogStore } from '../../../../src/raft/level-storage.js'
import type { FrameLink, FrameReceiver, FrameSink } from '../../../../src/transport/raft-transport.js'
import { EventHeap } from '../heap.js'
import type { Rng } from '../rng.js'

interface WorldEvent {
  time: number
  seq: number
  run: () => void
}

/** Virtual time in milliseconds; events at one time run in the order they were scheduled. */
export class World {
  now = 0
  #seq = 0
  readonly #heap = new EventHeap<WorldEvent>()

  at (time: number, run: () => void): void {
    this.#heap.push({ time: Math.max(time, this.now), seq: this.#seq++, run })
  }

  after (ms: number, run: () => void): void {
    this.at(this.now + ms, run)
  }

  /** Runs the earliest event; false when none is left. */
  runNext (): boolean {
    const ev = this.#heap.pop()
    if (ev === undefined) return false
    this.now = ev.time
    ev.run()
    return true
  }
}

interface Timer { cancelled: boolean }

/**
 * The Clock of one process: its timers die with it (`alive` turns false at a crash), like a killed
 * process's timers. Intervals drift by a little jitter, as real ones do under load.
 */
export function processClock (world: World, alive: () => boolean, rng: Rng): Clock {
  return {
    now: () => world.now,
    setTimeout: (fn, ms) => {
      const t: Timer = { cancelled: false }
      world.after(ms, () => { if (!t.cancelled && alive()) fn() })
      return t
    },
    clearTimeout: (h: TimerHandle) => { (h as Timer).cancelled = true },
    setInterval: (fn, ms) => {
      const t: Timer = { cancelled: false }
      const again = (): void => {
        world.after(ms + (rng.chance(0.1) ? rng.range(-ms / 5, ms / 5) : 0), () => {
          if (t.cancelled || !alive()) return
          fn()
          again()
        })
      }
      again()
      return t
    },
    clearInterval: (h: TimerHandle) => { (h as Timer).cancelled = true },
    defer: (fn) => { world.after(0, () => { if (alive()) fn() }) }
  }
}

interface PendingBatch {
  ops: BatchOp[]
  sync: boolean
}

export interface DiskCrash {
  /** Batches submitted and not yet complete that made it to the disk anyway. */
  kept: number
  /** Batches lost (the first of them possibly torn, which LevelDB's log checksum drops whole). */
  lost: number
  /** Completed writes that were never fsync'd and were lost (a power loss). */
  unsyncedLost: number
}

/**
 * A node's disk under its LevelDB log. A batch completes after a delay (its fsync); batches complete in
 * order (one write-ahead log). At a crash, the batches still pending survive as a random prefix (the
 * next one may be torn: LevelDB's log record checksum drops a torn batch whole, so torn = lost).
 * Completed batches written without sync sit in the page cache: a kill -9 keeps them, a power loss
 * loses them unless a later fsync made it.
 */
export class SimDisk {
  readonly #durable = new Map<string, Uint8Array>()
  /** Completed unsynced writes (undefined: a delete), over #durable. */
  #cache = new Map<string, Uint8Array | undefined>()
  #pending: PendingBatch[] = []
  /** Bumped at each crash: completions scheduled before it are void. */
  #epoch = 0
  #lastCompletion = 0
  /** Multiplies fsync delays (a slow or busy disk). */
  slowness = 1

  constructor (private readonly world: World, private readonly rng: Rng) {}

  /** The LogStore a process opens on this disk. */
  store (): LogStore {
    return {
      get: async (key) => this.#get(key),
      range: (gte, lt) => this.#range(gte, lt),
      batch: async (ops, options) => { await this.#batch(ops, options.sync) },
      close: async () => {}
    }
  }

  #get (key: string): Uint8Array | undefined {
    if (this.#cache.has(key)) return this.#cache.get(key)
    return this.#durable.get(key)
  }

  async * #range (gte: string, lt: string): AsyncIterable<[string, Uint8Array]> {
    const keys = new Set<string>()
    for (const k of this.#durable.keys()) if (k >= gte && k < lt) keys.add(k)
    for (const k of this.#cache.keys()) if (k >= gte && k < lt) keys.add(k)
    for (const k of [...keys].sort()) {
      const v = this.#get(k)
      if (v !== undefined) yield [k, v]
    }
  }

  async #batch (ops: BatchOp[], sync: boolean): Promise<void> {
    const b: PendingBatch = { ops: ops.slice(), sync }
    this.#pending.push(b)
    const epoch = this.#epoch
    const base = this.rng.chance(0.05) ? this.rng.range(20, 150) : this.rng.range(1, 6)
    const done = Math.max(this.#lastCompletion, this.world.now) + base * this.slowness
    this.#lastCompletion = done
    await new Promise<void>((resolve) => {
      this.world.at(done, () => {
        // a crash in between voids this completion: the process that waited is gone
        if (this.#epoch !== epoch) return
        this.#complete(b)
        resolve()
      })
    })
  }

  #complete (b: PendingBatch): void {
    const i = this.#pending.indexOf(b)
    if (i !== 0) throw new Error(`sim disk: batch completes out of order (${i})`)
    this.#pending.shift()
    if (b.sync) {
      this.#flushCache()
      this.#apply(this.#durable, b.ops)
    } else {
      for (const op of b.ops) this.#cache.set(op.key, op.type === 'put' ? op.value : undefined)
    }
  }

  #flushCache (): void {
    for (const [k, v] of this.#cache) {
      if (v === undefined) this.#durable.delete(k)
      else this.#durable.set(k, v)
    }
    this.#cache = new Map()
  }

  #apply (into: Map<string, Uint8Array>, ops: BatchOp[]): void {
    for (const op of ops) {
      if (op.type === 'put') into.set(op.key, op.value)
      else into.delete(op.key)
    }
  }

  /** The process died (`power`: so did the machine). Decides what of the unfinished writes survives. */
  crash (power: boolean): DiskCrash {
    this.#epoch++
    const pending = this.#pending
    this.#pending = []
    this.#lastCompletion = this.world.now
    const kept = this.rng.int(pending.length + 1)
    let unsyncedLost = 0
    if (!power || kept > 0) this.#flushCache()
    else {
      unsyncedLost = this.#cache.size
      this.#cache = new Map()
    }
    for (const b of pending.slice(0, kept)) this.#apply(this.#durable, b.ops)
    return { kept, lost: pending.length - kept, unsyncedLost }
  }
}

interface Endpoint {
  /** The process incarnation listening, or undefined while it is down. */
  incarnation: number | undefined
  receiver: FrameReceiver | undefined
  /** Streams open towards this node, closed when it goes down. */
  inbound: Set<SimSink>
}

class SimSink implements FrameSink {
  open = true
  readonly #closeFns: Array<() => void> = []
  lastDelivery = 0

  constructor (readonly from: string, readonly to: string, readonly toIncarnation: number) {}

  write: (frames: Uint8Array[], options: { readonly signal: AbortSignal }) => Promise<void> = async () => {}

  abort (): void {
    this.close()
  }

  close (): void {
    if (!this.open) return
    this.open = false
    for (const fn of this.#closeFns.splice(0)) fn()
  }

  onClose (fn: () => void): void {
    if (!this.open) fn()
    else this.#closeFns.push(fn)
  }
}

function rejectOnAbort (signal: AbortSignal): Promise<never> {
  return new Promise((_resolve, reject) => {
    if (signal.aborted) reject(signal.reason as Error)
    else signal.addEventListener('abort', () => { reject(signal.reason as Error) }, { once: true })
  })
}

class StreamResetError extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'StreamResetError'
  }
}

/**
 * The network between the simulated processes: one-way frame streams (each in order, like a stream on
 * TCP), partitions that may cut one direction only, and writes that fail — before their bytes left, or
 * after (delivered all the same: the sender cannot tell).
 */
export class SimNetwork {
  readonly #endpoints = new Map<string, Endpoint>()
  /** Cut directions, as `from>to`. */
  readonly #cut = new Set<string>()
  /** Probability that a write fails before its bytes leave, and that one fails after they left. */
  failBeforeRate = 0
  failAfterRate = 0
  /** Writes whose bytes arrived but which reported failure (the case a sender cannot tell). */
  readonly stats = { writesFailedAfter: 0 }

  constructor (private readonly world: World, private readonly rng: Rng) {}

  #endpoint (id: string): Endpoint {
    let e = this.#endpoints.get(id)
    if (e === undefined) {
      e = { incarnation: undefined, receiver: undefined, inbound: new Set() }
      this.#endpoints.set(id, e)
    }
    return e
  }

  cut (from: string, to: string): void {
    this.#cut.add(`${from}>${to}`)
  }

  healAll (): void {
    this.#cut.clear()
  }

  isCut (from: string, to: string): boolean {
    return this.#cut.has(`${from}>${to}`)
  }

  /** The process `incarnation` of node `id` is up: it gets its link. */
  up (id: string, incarnation: number): FrameLink {
    const e = this.#endpoint(id)
    e.incarnation = incarnation
    e.receiver = undefined
    const alive = (): boolean => e.incarnation === incarnation
    return {
      open: async (peer, signal) => await this.#open(id, alive, peer, signal),
      listen: async (receiver) => { if (alive()) e.receiver = receiver },
      close: async () => { if (alive()) e.receiver = undefined }
    }
  }

  /** Node `id` went down: streams towards it are reset a moment later (its peers see an RST). */
  down (id: string): void {
    const e = this.#endpoint(id)
    e.incarnation = undefined
    e.receiver = undefined
    const sinks = [...e.inbound]
    e.inbound.clear()
    this.world.after(this.rng.range(1, 30), () => { for (const s of sinks) s.close() })
  }

  async #open (from: string, alive: () => boolean, to: string, signal: AbortSignal): Promise<FrameSink> {
    const delay = this.rng.range(1, 3)
    await new Promise<void>((resolve) => { this.world.after(delay, resolve) })
    const e = this.#endpoint(to)
    if (!alive()) throw new StreamResetError('the process is gone')
    if (e.incarnation === undefined || this.isCut(from, to) || this.isCut(to, from)) {
      // a dial towards a dead or unreachable node: refused at once, or it hangs until its deadline
      if (e.incarnation === undefined && this.rng.chance(0.5)) throw new StreamResetError(`connection to ${to} refused`)
      return await rejectOnAbort(signal)
    }
    const sink = new SimSink(from, to, e.incarnation)
    e.inbound.add(sink)
    sink.write = async (frames, options) => { await this.#write(sink, frames, options) }
    return sink
  }

  async #write (sink: SimSink, frames: Uint8Array[], options: { readonly signal: AbortSignal }): Promise<void> {
    if (!sink.open) throw new StreamResetError('the stream is closed')
    const e = this.#endpoint(sink.to)
    if (e.incarnation !== sink.toIncarnation || this.isCut(sink.from, sink.to)) {
      // nothing gets through: the write waits for its deadline (or the reset of a dead peer)
      await Promise.race([rejectOnAbort(options.signal), new Promise<never>((_resolve, reject) => {
        sink.onClose(() => { reject(new StreamResetError('the stream was reset')) })
      })])
      return
    }
    const r = this.rng.next()
    if (r < this.failBeforeRate) {
      await new Promise<void>((resolve) => { this.world.after(1, resolve) })
      sink.close()
      throw new StreamResetError('the stream was reset before the write')
    }
    for (const bytes of frames) {
      const at = Math.max(sink.lastDelivery, this.world.now + (this.rng.chance(0.05) ? this.rng.range(20, 200) : this.rng.range(0, 4)))
      sink.lastDelivery = at
      this.world.at(at, () => {
        const t = this.#endpoint(sink.to)
        if (t.incarnation !== sink.toIncarnation || t.receiver === undefined) return
        if (!t.receiver.frame(sink.from, bytes)) sink.close()
      })
    }
    if (r < this.failBeforeRate + this.failAfterRate) {
      // the bytes left and will arrive, but the write never reports success: it times out
      this.stats.writesFailedAfter++
      await rejectOnAbort(options.signal)
      return
    }
    await new Promise<void>((resolve) => { this.world.after(this.rng.range(0, 1), resolve) })
  }
}
