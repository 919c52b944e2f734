import { setMaxListeners } from 'node:events'
import { DeadlineExceededError } from '@dfs/api'

/**
 * An AbortSignal that fires when `touch()` has not been called for `idleMs`. Streaming calls use it
 * as their deadline: a 1 GiB transfer may take long, but never long without progress.
 */
export class IdleTimer {
  readonly #controller = new AbortController()
  #timer: NodeJS.Timeout | undefined
  readonly #parent: AbortSignal | undefined
  readonly #onParent: (() => void) | undefined

  /** `parent`: the caller's signal, which also ends it (with its reason) until `clear()`. */
  constructor (idleMs: number, what: string, parent?: AbortSignal) {
    setMaxListeners(Infinity, this.#controller.signal)
    if (parent?.aborted === true) {
      this.#controller.abort(parent.reason)
      return
    }
    this.#timer = setTimeout(() => {
      this.#controller.abort(new DeadlineExceededError(`${what} made no progress for ${idleMs} ms`, { idleMs }))
    }, idleMs)
    if (parent !== undefined) {
      this.#parent = parent
      this.#onParent = () => {
        this.clear()
        this.#controller.abort(parent.reason)
      }
      parent.addEventListener('abort', this.#onParent, { once: true })
    }
  }

  get signal (): AbortSignal {
    return this.#controller.signal
  }

  touch (): void {
    this.#timer?.refresh()
  }

  clear (): void {
    if (this.#timer != null) clearTimeout(this.#timer)
    this.#timer = undefined
    if (this.#onParent !== undefined) this.#parent?.removeEventListener('abort', this.#onParent)
  }
}
