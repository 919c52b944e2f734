/** Small helpers shared by the core files. */
import { ENTRY_OVERHEAD_BYTES } from './constants.js'
import { EntryType } from './types.js'
import type { Entry, HardState, Message, MessageType } from './types.js'

/** Bytes an entry counts for in message and Ready size limits. */
export function entrySize (e: Entry): number {
  return e.data.byteLength + ENTRY_OVERHEAD_BYTES
}

/** Bytes of application payload (the uncommitted-size limit counts only these, so no-ops are free). */
export function payloadSize (entries: Entry[]): number {
  let n = 0
  for (const e of entries) n += e.data.byteLength
  return n
}

/**
 * The longest prefix of `entries` whose total entrySize is at most `maxSize`, but never fewer than one
 * entry (so one oversized entry still makes progress).
 */
export function limitSize (entries: Entry[], maxSize: number | undefined): Entry[] {
  if (maxSize === undefined || entries.length === 0) return entries
  let size = entrySize(entries[0])
  let n = 1
  for (; n < entries.length; n++) {
    size += entrySize(entries[n])
    if (size > maxSize) break
  }
  return n === entries.length ? entries : entries.slice(0, n)
}

export const EMPTY_HARD_STATE: HardState = Object.freeze({ term: 0, vote: '', commit: 0 })

/**
 * Whether `entries` hold a conf change. Committed ones change who votes once applied: a node does not
 * campaign while any is unapplied, and applies them only after the commit index covering them is
 * durable (LevelStorage.saveReady, RaftGroup).
 */
export function holdsConfChange (entries: Entry[]): boolean {
  for (const e of entries) if (e.type === EntryType.ConfChange) return true
  return false
}

export function isEmptyHardState (hs: HardState): boolean {
  return hs.term === 0 && hs.vote === '' && hs.commit === 0
}

export function hardStateEquals (a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit
}

/** A message with every field not given at its zero value. */
export function makeMessage (m: Partial<Message> & { type: MessageType }): Message {
  return {
    type: m.type,
    to: m.to ?? '',
    from: m.from ?? '',
    term: m.term ?? 0,
    index: m.index ?? 0,
    logTerm: m.logTerm ?? 0,
    entries: m.entries ?? [],
    commit: m.commit ?? 0,
    reject: m.reject ?? false,
    rejectHint: m.rejectHint ?? 0,
    ...(m.snapshot !== undefined ? { snapshot: m.snapshot } : {}),
    ...(m.context !== undefined ? { context: m.context } : {}),
    ...(m.quiet === true ? { quiet: true } : {})
  }
}

export function bytesEqual (a: Uint8Array | undefined, b: Uint8Array | undefined): boolean {
  if (a === undefined || b === undefined) return a === b
  if (a.byteLength !== b.byteLength) return false
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false
  return true
}

/** A Map key for a byte string (ReadIndex contexts). */
export function bytesKey (b: Uint8Array | undefined): string {
  return b === undefined ? '' : Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex')
}

/**
 * cborg decode options for untrusted bytes (entries, messages, snapshots, operations): strict
 * canonical-ish CBOR, no indefinite lengths, undefined, Infinity, NaN or bigints, no duplicate keys,
 * plain objects rather than Maps.
 */
export const STRICT_CBOR_DECODE_OPTIONS = {
  strict: true,
  allowIndefinite: false,
  allowUndefined: false,
  allowInfinity: false,
  allowNaN: false,
  allowBigInt: false,
  rejectDuplicateMapKeys: true,
  useMaps: false
} as const

/**
 * Whether a Ready must be made durable (fsync'd) before its messages are sent: it carries entries, a
 * snapshot, or a new term or vote (paper figure 2's persistent state). A Ready whose only change is
 * the commit index need not be (etcd's MustSync): the commit index is volatile.
 */
export function mustSync (rd: { hardState?: HardState, entries: Entry[], snapshot?: unknown }, durable: HardState): boolean {
  if (rd.snapshot !== undefined || rd.entries.length > 0) return true
  const hs = rd.hardState
  return hs !== undefined && (hs.term !== durable.term || hs.vote !== durable.vote)
}
