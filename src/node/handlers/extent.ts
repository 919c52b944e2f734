import { setMaxListeners } from 'node:events'
import { AbortedError, EXTENT_ID_PATTERN, InvalidArgumentError, type ExtentStore } from '@dfs/api'
import { record, text } from './params.js'
import type { RpcMethod } from '../../net/rpc/types.js'

/**
 * The action `extent.get` is authorized as. Only cluster members may hold it: extent bytes are read
 * node to node, under the tenant checks the serving node already applied to the file request.
 */
export const EXTENT_READ_ACTION = 'extent.read'

/** Name of the node-to-node extent read. */
export const EXTENT_GET_METHOD = 'extent.get'

/**
 * Extent reads one node serves at once (each holds up to EXTENT_SIZE_MAX bytes in memory until its
 * body is sent); further calls wait for a slot, under their own deadline.
 */
export const EXTENT_READS_IN_FLIGHT_MAX = 16

/** What `extent.get` answers before the bytes. */
export interface ExtentGetResult {
  id: string
  size: number
  checksum: string
}

/**
 * `extent.get` (download): params `{ id }`, result `{ id, size, checksum }` as the local store
 * records them, body the extent's bytes. The store verifies the bytes against their checksum before
 * they leave (a damaged copy is CorruptExtent, a missing one NotFound, both typed on the wire); the
 * caller still verifies them against metadata's checksum, because it never trusts a peer.
 */
export function extentMethods (store: ExtentStore, init: { readsInFlightMax?: number } = {}): RpcMethod[] {
  const slots = new Slots(init.readsInFlightMax ?? EXTENT_READS_IN_FLIGHT_MAX)
  return [
    {
      name: EXTENT_GET_METHOD,
      action: EXTENT_READ_ACTION,
      kind: 'download',
      params: (raw) => {
        const id = text(record(raw, EXTENT_GET_METHOD), 'id', { max: 36 })
        if (!EXTENT_ID_PATTERN.test(id)) throw new InvalidArgumentError(`${JSON.stringify(id)} is not an extent id`, { key: 'id' })
        return { id }
      },
      handle: async ({ params, signal }) => {
        const release = await slots.acquire(signal)
        // The slot is held until the body has been sent, or the call ends some other way (its signal
        // fires when the stream closes); `release` is idempotent.
        signal.addEventListener('abort', release, { once: true })
        try {
          const bytes = await store.get(params.id, { signal })
          const info = await store.stat(params.id, { signal })
          // get verified the bytes against the header stat read; ids are immutable, so they agree
          if (info.size !== bytes.byteLength) {
            throw new Error(`store invariant broken: extent ${params.id} read ${bytes.byteLength} bytes, header says ${info.size}`)
          }
          const result: ExtentGetResult = { id: params.id, size: info.size, checksum: info.checksum }
          return { result, body: once(bytes, release) }
        } catch (err) {
          release()
          throw err
        }
      }
    }
  ]
}

async function * once (bytes: Uint8Array, done: () => void): AsyncGenerator<Uint8Array> {
  try {
    if (bytes.byteLength > 0) yield bytes
  } finally {
    done()
  }
}

/** A counting semaphore whose waiters give up when their signal fires. */
class Slots {
  readonly #max: number
  #used = 0
  readonly #waiters: Array<() => void> = []

  constructor (max: number) {
    if (!(Number.isInteger(max) && max > 0)) throw new Error(`reads in flight must be a positive integer, got ${max}`)
    this.#max = max
  }

  async acquire (signal: AbortSignal): Promise<() => void> {
    if (signal.aborted) throw new AbortedError('extent read aborted before it started')
    if (this.#used < this.#max) {
      this.#used += 1
      return this.#releaser()
    }
    setMaxListeners(Infinity, signal)
    await new Promise<void>((resolve, reject) => {
      const onAbort = (): void => {
        const i = this.#waiters.indexOf(wake)
        if (i >= 0) this.#waiters.splice(i, 1)
        reject(new AbortedError('extent read aborted while waiting for a slot'))
      }
      const wake = (): void => {
        signal.removeEventListener('abort', onAbort)
        resolve()
      }
      this.#waiters.push(wake)
      signal.addEventListener('abort', onAbort, { once: true })
    })
    // the slot was handed over by the releaser: `#used` already counts it
    return this.#releaser()
  }

  #releaser (): () => void {
    let released = false
    return () => {
      if (released) return
      released = true
      const next = this.#waiters.shift()
      if (next != null) next()
      else this.#used -= 1
    }
  }
}
