/**
 * The envelope of a proposal in a Normal entry: a version byte, the proposing group instance's random
 * nonce and a sequence number (together the proposal id), then the application's payload.
 *
 *   0x01 | nonce: 8 bytes | seq: 8 bytes big-endian | payload
 *
 * The id lets the proposer find its waiting caller when the entry is applied; every other replica
 * applies the payload and ignores the id. An empty Normal entry is a leader's no-op, not an envelope.
 */
export const ENVELOPE_VERSION = 1
export const NONCE_BYTES = 8
export const ENVELOPE_HEADER_BYTES = 1 + NONCE_BYTES + 8

export interface Envelope {
  nonce: Uint8Array
  seq: number
  payload: Uint8Array
}

export function sealEnvelope (nonce: Uint8Array, seq: number, payload: Uint8Array): Uint8Array {
  if (nonce.byteLength !== NONCE_BYTES) throw new Error(`envelope nonce must be ${NONCE_BYTES} bytes`)
  if (!Number.isSafeInteger(seq) || seq < 0) throw new Error(`envelope seq ${seq} is not a safe integer`)
  const out = new Uint8Array(ENVELOPE_HEADER_BYTES + payload.byteLength)
  out[0] = ENVELOPE_VERSION
  out.set(nonce, 1)
  const view = new DataView(out.buffer)
  view.setUint32(1 + NONCE_BYTES, Math.floor(seq / 0x1_0000_0000))
  view.setUint32(1 + NONCE_BYTES + 4, seq >>> 0)
  out.set(payload, ENVELOPE_HEADER_BYTES)
  return out
}

/** The envelope in an entry's data, or undefined if the bytes are not one (a foreign entry). */
export function openEnvelope (data: Uint8Array): Envelope | undefined {
  if (data.byteLength < ENVELOPE_HEADER_BYTES || data[0] !== ENVELOPE_VERSION) return undefined
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength)
  const seq = view.getUint32(1 + NONCE_BYTES) * 0x1_0000_0000 + view.getUint32(1 + NONCE_BYTES + 4)
  return { nonce: data.subarray(1, 1 + NONCE_BYTES), seq, payload: data.subarray(ENVELOPE_HEADER_BYTES) }
}
