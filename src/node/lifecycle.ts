import { logger } from '@libp2p/logger'

const log = logger('dfs:node:lifecycle')

/** A part of a node that has started, and how to stop it. */
interface Started {
  name: string
  stop: () => Promise<void> | void
}

/**
 * The one ordered list of a node's started parts (after js-libp2p's components): each part is
 * recorded as soon as it has started, and stop() stops them in reverse order — the same list whether
 * the node stops normally or its start failed half-way, so the two can never disagree. A part whose
 * stop fails is logged and the rest still stop.
 */
export class Lifecycle {
  readonly #started: Started[] = []
  #stopping: Promise<void> | undefined

  /** Records a part that has just started; it will be stopped before every part started earlier. */
  started (name: string, stop: () => Promise<void> | void): void {
    if (this.#stopping !== undefined) throw new Error(`${name} started while the node is stopping`)
    this.#started.push({ name, stop })
  }

  /** The parts started so far, in start order. */
  get names (): string[] {
    return this.#started.map((s) => s.name)
  }

  /** Stops every started part, last started first. Safe to call more than once. */
  async stop (): Promise<void> {
    this.#stopping ??= (async () => {
      for (const part of [...this.#started].reverse()) {
        try {
          await part.stop()
        } catch (err) {
          log.error('stopping %s failed: %s', part.name, (err as Error).message)
        }
      }
    })()
    await this.#stopping
  }
}
