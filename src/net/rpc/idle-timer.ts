import { setMaxListeners } from 'node:events'
import { DeadlineExceededError } from '@dfs/api'

/**
 * An AbortSignal that fires when `touch()` has not been called for `idleMs`. Streaming calls use it
 * as their deadline: a 1 GiB transfer may take long, but never long without progress.
 */
export class IdleTimer {
  readonly #controller = new AbortController()
  #timer: NodeJS.Timeout | undefined

  constructor (idleMs: number, what: string) {
    setMaxListeners(Infinity, this.#controller.signal)
    this.#timer = setTimeout(() => {
      this.#controller.abort(new DeadlineExceededError(`${what} made no progress for ${idleMs} ms`, { idleMs }))
    }, idleMs)
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
  }
}
