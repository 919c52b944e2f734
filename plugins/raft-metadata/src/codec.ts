/**
 * The CBOR codec of the metadata plugin: operations in the log (and, later, in Raft entries) and
 * state-machine snapshots.
 *
 * Encoding is deterministic: cborg sorts map keys (RFC 8949 core deterministic order), writes the
 * shortest integer and float forms, and `undefined` properties are dropped, so the same value always
 * gives the same bytes. Decoding is strict: no indefinite lengths, no undefined,
 * NaN, Infinity or bigints, no duplicate map keys. Decoded values are untrusted and must be validated
 * by whoever uses them (the state machine does).
 */
import { decode, encode } from 'cborg'
import { InvalidArgumentError, MalformedFrameError } from '@dfs/api'
import type { MetadataOp } from '@dfs/api'
import { STRICT_CBOR_DECODE_OPTIONS } from './raft/util.js'

const encodeOptions = {
  // An `undefined` property is an absent one (as in JSON); an `undefined` elsewhere is refused by the
  // strict decoder, so callers that need a guarantee decode what they encoded (the log does).
  ignoreUndefinedProperties: true
} as const

const decodeOptions = STRICT_CBOR_DECODE_OPTIONS

/** Deterministic CBOR. Throws InvalidArgument for values CBOR cannot carry (functions, symbols …). */
export function encodeCbor (value: unknown): Uint8Array {
  try {
    return encode(value, encodeOptions)
  } catch (err) {
    throw new InvalidArgumentError(`value cannot be encoded as CBOR: ${(err as Error).message}`)
  }
}

/** Strict CBOR decoding. Throws MalformedFrame for anything that is not exactly one CBOR value. */
export function decodeCbor (bytes: Uint8Array): unknown {
  if (!(bytes instanceof Uint8Array)) {
    throw new MalformedFrameError('CBOR input must be a Uint8Array')
  }
  try {
    return decode(bytes, decodeOptions)
  } catch (err) {
    throw new MalformedFrameError(`malformed CBOR: ${(err as Error).message}`, { bytes: bytes.byteLength })
  }
}

/** The bytes of an operation as they are logged and replicated. */
export function encodeOp (op: MetadataOp): Uint8Array {
  return encodeCbor(op)
}

/**
 * Decodes logged bytes into an operation-shaped value. The result is NOT validated: pass it to
 * `MetadataStateMachine.apply`, which rejects malformed operations deterministically.
 */
export function decodeOp (bytes: Uint8Array): MetadataOp {
  return decodeCbor(bytes) as MetadataOp
}
