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
