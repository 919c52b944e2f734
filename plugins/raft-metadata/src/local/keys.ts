/**
 * LevelDB key layout of the local metadata log. Keys are bytes:
 *   'l' + index as 8 bytes big-endian   one CBOR-encoded MetadataOp per index (sorted by index)
 *   's'                                 the latest state-machine snapshot (its own appliedIndex inside)
 */
const LOG_PREFIX = 0x6c // 'l'

export const SNAPSHOT_KEY = Uint8Array.of(0x73) // 's'
/** Sorts before every log key. */
export const LOG_START = Uint8Array.of(LOG_PREFIX)
/** Sorts after every log key. */
export const LOG_END = Uint8Array.of(LOG_PREFIX + 1)

export function logKey (index: number): Uint8Array {
  if (!Number.isSafeInteger(index) || index < 0) {
    throw new RangeError(`log index ${index} is not a non-negative safe integer`)
  }
  const key = new Uint8Array(9)
  key[0] = LOG_PREFIX
  const view = new DataView(key.buffer)
  view.setUint32(1, Math.floor(index / 0x1_0000_0000))
  view.setUint32(5, index >>> 0)
  return key
}

/** The index of a log key, or undefined if `key` is not one. */
export function parseLogKey (key: Uint8Array): number | undefined {
  if (key.byteLength !== 9 || key[0] !== LOG_PREFIX) {
    return undefined
  }
  const view = new DataView(key.buffer, key.byteOffset, key.byteLength)
  const index = view.getUint32(1) * 0x1_0000_0000 + view.getUint32(5)
  return Number.isSafeInteger(index) ? index : undefined
}
