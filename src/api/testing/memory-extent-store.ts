import { createHash } from 'node:crypto'
import {
  throwIfAborted,
  AlreadyExistsError,
  CorruptExtentError,
  EXTENT_ID_PATTERN,
  EXTENT_SIZE_MAX,
  InvalidArgumentError,
  NotFoundError,
  UnavailableError
} from '../index.js'
import type { CallOptions, Checksum, ExtentInfo, ExtentStore, ExtentStoreUsage } from '../index.js'

/** What survives a "restart" of a memory store: pass the same backing to a new instance. */
export type MemoryExtentBacking = Map<string, { bytes: Uint8Array, checksum: Checksum }>

const CHECKSUM_PATTERN = /^sha256:[0-9a-f]{64}$/
const LIST_LIMIT_MAX = 1_000_000

function sha256 (bytes: Uint8Array): Checksum {
  return 'sha256:' + createHash('sha256').update(bytes).digest('hex')
}

/**
 * ExtentStore in memory, to the same contract as the LevelDB store (the shared suite runs against
 * both). Every mutation happens synchronously after the call's checks, so operations on one id are
 * serialised by the event loop. Bytes are copied in and out: a caller cannot change what is stored.
 */
export class MemoryExtentStore implements ExtentStore {
  readonly backing: MemoryExtentBacking
  readonly node: string | undefined
  #state: 'new' | 'open' | 'closed' = 'new'

  constructor (backing: MemoryExtentBacking = new Map(), options: { node?: string } = {}) {
    this.backing = backing
    this.node = options.node
  }

  async open (options: CallOptions = {}): Promise<void> {
    throwIfAborted(options.signal)
    if (this.#state === 'closed') throw new UnavailableError('memory extent store is closed', { state: 'closed' })
    this.#state = 'open'
  }

  async close (): Promise<void> {
    this.#state = 'closed'
  }

  async put (id: string, bytes: Uint8Array, options: CallOptions & { checksum?: Checksum } = {}): Promise<ExtentInfo> {
    this.#check(id, options)
    if (!(bytes instanceof Uint8Array)) {
      throw new InvalidArgumentError('extent bytes must be a Uint8Array', { id })
    }
    if (bytes.byteLength > EXTENT_SIZE_MAX) {
      throw new InvalidArgumentError(`extent ${id} is larger than ${EXTENT_SIZE_MAX} bytes`, { id, size: bytes.byteLength, sizeMax: EXTENT_SIZE_MAX })
    }
    const given = options.checksum
    if (given !== undefined && (typeof given !== 'string' || !CHECKSUM_PATTERN.test(given))) {
      throw new InvalidArgumentError(`checksum ${JSON.stringify(given)} is not sha256:<hex>`, { id, checksum: given })
    }
    const checksum = sha256(bytes)
    if (given !== undefined && given !== checksum) {
      throw new CorruptExtentError(id, given, checksum, this.#details({ reason: 'checksum given with put does not match the bytes' }))
    }
    const info = { id, size: bytes.byteLength, checksum }
    const existing = this.backing.get(id)
    if (existing != null) {
      if (existing.checksum !== checksum) {
        throw new AlreadyExistsError(`extent ${id} exists with different bytes`, { id, existingChecksum: existing.checksum, checksum })
      }
      if (sha256(existing.bytes) !== checksum) existing.bytes = bytes.slice() // heal a corrupt copy
      return info
    }
    this.backing.set(id, { bytes: bytes.slice(), checksum })
    return info
  }

  async get (id: string, options: CallOptions = {}): Promise<Uint8Array> {
    this.#check(id, options)
    const entry = this.backing.get(id)
    if (entry == null) throw new NotFoundError(`extent ${id} does not exist`, { id })
    const actual = sha256(entry.bytes)
    if (actual !== entry.checksum) throw new CorruptExtentError(id, entry.checksum, actual, this.#details({}))
    return entry.bytes.slice()
  }

  async has (id: string, options: CallOptions = {}): Promise<boolean> {
    this.#check(id, options)
    return this.backing.has(id)
  }

  async stat (id: string, options: CallOptions = {}): Promise<ExtentInfo> {
    this.#check(id, options)
    const entry = this.backing.get(id)
    if (entry == null) throw new NotFoundError(`extent ${id} does not exist`, { id })
    return { id, size: entry.bytes.byteLength, checksum: entry.checksum }
  }

  async delete (id: string, options: CallOptions = {}): Promise<boolean> {
    this.#check(id, options)
    return this.backing.delete(id)
  }

  list (options: CallOptions & { after?: string, limit?: number } = {}): AsyncIterable<ExtentInfo> {
    const { after, limit } = options
    if (after !== undefined && typeof after !== 'string') throw new InvalidArgumentError('list: after must be an extent id', { after })
    if (limit !== undefined && (!Number.isSafeInteger(limit) || limit < 0 || limit > LIST_LIMIT_MAX)) {
      throw new InvalidArgumentError(`list: limit must be an integer from 0 to ${LIST_LIMIT_MAX}`, { limit })
    }
    return this.#list(after, limit ?? Infinity, options.signal)
  }

  async * #list (after: string | undefined, limit: number, signal: AbortSignal | undefined): AsyncGenerator<ExtentInfo> {
    throwIfAborted(signal)
    this.#assertOpen()
    const ids = [...this.backing.keys()].filter((id) => after === undefined || id > after).sort()
    let yielded = 0
    for (const id of ids) {
      if (yielded >= limit) return
      throwIfAborted(signal)
      this.#assertOpen()
      const entry = this.backing.get(id)
      if (entry == null) continue // deleted while listing
      yielded += 1
      yield { id, size: entry.bytes.byteLength, checksum: entry.checksum }
    }
  }

  async usage (options: CallOptions = {}): Promise<ExtentStoreUsage> {
    throwIfAborted(options.signal)
    this.#assertOpen()
    let bytes = 0
    for (const entry of this.backing.values()) bytes += entry.bytes.byteLength
    return { extents: this.backing.size, bytes }
  }

  /** Test hook: silently damages the stored bytes of `id`, as bit rot would (its checksum stays). */
  corrupt (id: string): void {
    const entry = this.backing.get(id)
    if (entry == null) throw new NotFoundError(`extent ${id} does not exist`, { id })
    entry.bytes = flipByte(entry.bytes)
  }

  #check (id: string, options: CallOptions): void {
    throwIfAborted(options.signal)
    this.#assertOpen()
    if (typeof id !== 'string' || !EXTENT_ID_PATTERN.test(id)) {
      throw new InvalidArgumentError(`${JSON.stringify(id)} is not an extent id`, { id })
    }
  }

  #assertOpen (): void {
    if (this.#state !== 'open') throw new UnavailableError(`memory extent store is ${this.#state}`, { state: this.#state })
  }

  #details (extra: Record<string, unknown>): Record<string, unknown> {
    return this.node === undefined ? extra : { node: this.node, ...extra }
  }
}

/** A copy of `bytes` with one bit of the middle byte flipped; an empty extent gains a byte instead. */
export function flipByte (bytes: Uint8Array): Uint8Array {
  if (bytes.byteLength === 0) return Uint8Array.of(0)
  const copy = bytes.slice()
  const at = copy.byteLength >> 1
  copy[at] = copy[at] ^ 0x01
  return copy
}
