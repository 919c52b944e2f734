/**
 * Cancellable deadlines for hot paths.
 *
 * `AbortSignal.timeout(ms)` cannot be cancelled: every call leaves a timer that fires later, builds
 * its DOMException and dispatches an abort event nobody listens to any more, and `AbortSignal.any`
 * registers its sources for the life of the signals. On paths taken once per RPC or per Raft write
 * (thousands of times a second) that was measurable CPU. A Deadline is one AbortController and one
 * timer that `clear()` cancels; it fires with the same reason as AbortSignal.timeout (a DOMException
 * named TimeoutError), so code that tells a timeout from an abort keeps working.
 */
export class Deadline {
  readonly #controller = new AbortController()
  /** Pending until the deadline fires, is cleared or ends otherwise; then undefined. */
  #timer: ReturnType<typeof setTimeout> | undefined
  /** When the pending timer fires (Date.now() time). */
  #atMs = Infinity
  /** Set only by this deadline's own timer (not by a parent's timeout). */
  #timedOut = false
  readonly #parent: AbortSignal | undefined
  readonly #onParent: (() => void) | undefined

  /** Fires after `ms` milliseconds, or when `parent` aborts (with its reason). */
  constructor (ms: number, parent?: AbortSignal) {
    if (parent?.aborted === true) {
      this.#controller.abort(parent.reason)
      return
    }
    this.#arm(ms)
    if (parent !== undefined) {
      this.#parent = parent
      this.#onParent = () => { this.abort(parent.reason) }
      parent.addEventListener('abort', this.#onParent, { once: true })
    }
  }

  get signal (): AbortSignal {
    return this.#controller.signal
  }

  /**
   * Whether this deadline's time ran out (rather than the parent or `abort` ending it, even when the
   * parent's reason was a timeout of its own).
   */
  get expired (): boolean {
    return this.#timedOut
  }

  /** Brings the deadline forward to `ms` from now; it never moves later, and an ended or cleared one stays so. */
  shorten (ms: number): void {
    if (this.#timer === undefined || this.#controller.signal.aborted || Date.now() + ms >= this.#atMs) return
    clearTimeout(this.#timer)
    this.#arm(ms)
  }

  #arm (ms: number): void {
    this.#atMs = Date.now() + Math.max(0, ms)
    this.#timer = setTimeout(() => {
      this.#timedOut = true
      this.abort(new DOMException('The operation was aborted due to timeout', 'TimeoutError'))
    }, Math.max(0, ms))
    this.#timer.unref?.()
  }

  /** Ends it now with `reason`. */
  abort (reason: unknown): void {
    if (this.#controller.signal.aborted) return
    this.clear()
    this.#controller.abort(reason)
  }

  /** Cancels the timer and lets go of the parent; the signal stays as it is. Idempotent. */
  clear (): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    this.#timer = undefined
    if (this.#onParent !== undefined) this.#parent?.removeEventListener('abort', this.#onParent)
  }
}
