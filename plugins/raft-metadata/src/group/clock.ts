/**
 * Time as the group driver and the transport see it: the system clock on a node, the simulator's
 * virtual clock in the seeded simulation (so a run replays exactly, timers included).
 */
export type TimerHandle = unknown

export interface Clock {
  /** Milliseconds since the epoch (virtual in the simulator). */
  now: () => number
  /** Runs `fn` once after `ms` (a pending call's deadline: on a node it keeps the process alive). */
  setTimeout: (fn: () => void, ms: number) => TimerHandle
  clearTimeout: (handle: TimerHandle) => void
  /** Runs `fn` every `ms`; the timer never keeps the process alive. */
  setInterval: (fn: () => void, ms: number) => TimerHandle
  clearInterval: (handle: TimerHandle) => void
  /** Runs `fn` after the I/O and microtasks of the current turn (setImmediate on a node). */
  defer: (fn: () => void) => void
}

/**
 * An AbortSignal that aborts after `ms` on `clock` (with `reason()`, by default a TimeoutError
 * DOMException, as AbortSignal.timeout gives); `clear` stops its timer.
 */
export function timeoutSignal (clock: Clock, ms: number, reason: () => Error = () => new DOMException('The operation was aborted due to timeout', 'TimeoutError')): { signal: AbortSignal, clear: () => void } {
  const controller = new AbortController()
  const timer = clock.setTimeout(() => { controller.abort(reason()) }, ms)
  return { signal: controller.signal, clear: () => { clock.clearTimeout(timer) } }
}

/**
 * A deadline of `ms` on `clock` whose signal (as timeoutSignal's) and timer are made only when
 * `signal` is first read. A stream write reads its signal only when it must wait for the stream to
 * drain, which a Raft transport write almost never does: a timer and an AbortController for each of
 * thousands of writes a second were ~1 % of a node's CPU (bench:cluster --profile). Passed as the
 * write's options object, it is an ordinary one to whoever reads it.
 */
export function lazyDeadline (clock: Clock, ms: number): { readonly signal: AbortSignal, clear: () => void } {
  let made: { signal: AbortSignal, clear: () => void } | undefined
  return {
    get signal () {
      made ??= timeoutSignal(clock, ms)
      return made.signal
    },
    clear: () => { made?.clear() }
  }
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => { clearTimeout(h as ReturnType<typeof setTimeout>) },
  setInterval: (fn, ms) => {
    const t = setInterval(fn, ms)
    t.unref?.()
    return t
  },
  clearInterval: (h) => { clearInterval(h as ReturnType<typeof setInterval>) },
  defer: (fn) => { setImmediate(fn) }
}

/** One interval timer per clock and period, shared by every subscriber (see subscribeTicks). */
interface SharedTicker { handle: TimerHandle, subscribers: Set<() => void> }
const tickers = new WeakMap<Clock, Map<number, SharedTicker>>()

/**
 * Calls `fn` every `ms` on `clock`, from ONE interval timer shared by every subscriber of the same
 * clock and period; returns what unsubscribes (the timer stops with its last subscriber).
 *
 * The Raft groups of a node tick together this way, so their leaders' heartbeats to a peer are queued
 * in the same event-loop turn and leave in one transport write (one muxer frame, one Noise message,
 * one syscall), and so do the peer's answers; with a timer per group, started at different moments,
 * each group paid for its own every tick. Subscribers run in subscription order.
 */
export function subscribeTicks (clock: Clock, ms: number, fn: () => void): () => void {
  let byPeriod = tickers.get(clock)
  if (byPeriod === undefined) {
    byPeriod = new Map()
    tickers.set(clock, byPeriod)
  }
  let ticker = byPeriod.get(ms)
  if (ticker === undefined) {
    const subscribers = new Set<() => void>()
    const handle = clock.setInterval(() => {
      for (const s of [...subscribers]) s()
    }, ms)
    ticker = { handle, subscribers }
    byPeriod.set(ms, ticker)
  }
  const mine = (): void => { fn() }
  ticker.subscribers.add(mine)
  const t = ticker
  const periods = byPeriod
  return () => {
    if (!t.subscribers.delete(mine) || t.subscribers.size > 0) return
    clock.clearInterval(t.handle)
    if (periods.get(ms) === t) periods.delete(ms)
  }
}
