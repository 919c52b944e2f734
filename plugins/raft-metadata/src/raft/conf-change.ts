/**
 * Membership changes: the ConfChange codec (the `data` of EntryType.ConfChange entries) and the pure
 * rule that applies one single-server change to a ConfState (thesis §4.1, one server at a time).
 */
import { decode, encode } from 'cborg'
import { CONF_CHANGE_CONTEXT_BYTES_MAX, NODE_ID_LENGTH_MAX } from './constants.js'
import { InvalidConfChangeError } from './errors.js'
import { ConfChangeType } from './types.js'
import type { ConfChange, ConfState, MemberRole, NodeId } from './types.js'
import { STRICT_CBOR_DECODE_OPTIONS } from './util.js'


const decodeOptions = STRICT_CBOR_DECODE_OPTIONS

const MEMBER_ROLES: ReadonlySet<unknown> = new Set<MemberRole>(['absent', 'learner', 'voter'])

/** Deterministic CBOR: `{ t: type, n: node, b?: basedOn, c?: context }`. */
export function encodeConfChange (cc: ConfChange): Uint8Array {
  validateConfChange(cc)
  const value: Record<string, unknown> = { t: cc.type, n: cc.node }
  if (cc.basedOn !== undefined) value.b = cc.basedOn
  if (cc.context !== undefined) value.c = cc.context
  return encode(value)
}

/** Strict decoding; throws InvalidConfChange for anything that is not exactly one valid ConfChange. */
export function decodeConfChange (b: Uint8Array): ConfChange {
  let value: unknown
  try {
    value = decode(b, decodeOptions)
  } catch (err) {
    throw new InvalidConfChangeError(`not CBOR: ${(err as Error).message}`)
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new InvalidConfChangeError('not a map')
  }
  const v = value as Record<string, unknown>
  for (const k of Object.keys(v)) {
    if (k !== 't' && k !== 'n' && k !== 'b' && k !== 'c') throw new InvalidConfChangeError(`unknown field ${k}`)
  }
  const cc: ConfChange = { type: v.t as ConfChangeType, node: v.n as NodeId }
  if (v.b !== undefined) cc.basedOn = v.b as MemberRole
  if (v.c !== undefined) {
    if (!(v.c instanceof Uint8Array)) throw new InvalidConfChangeError('context is not bytes')
    cc.context = v.c
  }
  validateConfChange(cc)
  return cc
}

function validateConfChange (cc: ConfChange): void {
  if (cc.type !== ConfChangeType.AddVoter && cc.type !== ConfChangeType.AddLearner &&
      cc.type !== ConfChangeType.RemoveNode) {
    throw new InvalidConfChangeError(`unknown type ${String(cc.type)}`)
  }
  if (typeof cc.node !== 'string' || cc.node.length === 0 || cc.node.length > NODE_ID_LENGTH_MAX) {
    throw new InvalidConfChangeError(`node id must be a string of 1..${NODE_ID_LENGTH_MAX} characters`)
  }
  if (cc.basedOn !== undefined && !MEMBER_ROLES.has(cc.basedOn)) {
    throw new InvalidConfChangeError(`basedOn must be one of ${[...MEMBER_ROLES].join(', ')}`)
  }
  if (cc.context !== undefined && cc.context.byteLength > CONF_CHANGE_CONTEXT_BYTES_MAX) {
    throw new InvalidConfChangeError(`context of ${cc.context.byteLength} bytes exceeds ${CONF_CHANGE_CONTEXT_BYTES_MAX}`)
  }
}

/** The role `node` has in `cs`. */
export function roleOf (cs: ConfState, node: NodeId): MemberRole {
  if (cs.voters.includes(node)) return 'voter'
  return cs.learners.includes(node) ? 'learner' : 'absent'
}

/** Whether the precondition of `cc` holds in `cs`: `cc.node` has the role `cc.basedOn` (always, without one). */
export function preconditionHolds (cs: ConfState, cc: ConfChange): boolean {
  return cc.basedOn === undefined || roleOf(cs, cc.node) === cc.basedOn
}

/**
 * The ConfState after applying `cc` to `cs` (a new object; `cs` is not modified). Lists stay sorted.
 *  - AddVoter: adds a voter, or promotes an existing learner (a learner is caught up first, thesis §4.2.1).
 *  - AddLearner: adds a learner, or demotes a voter (removing a voter is a single-server change too).
 *  - RemoveNode: removes a voter or learner.
 * A change whose precondition (`basedOn`) does not hold in `cs` is a no-op (returns `cs` unchanged).
 * A change that would leave no voter is refused (returns `cs` unchanged), deterministically on every
 * node, because a group without voters can never elect a leader again.
 */
export function applyToConfState (cs: ConfState, cc: ConfChange): ConfState {
  if (!preconditionHolds(cs, cc)) return cloneConfState(cs)
  const voters = new Set(cs.voters)
  const learners = new Set(cs.learners)
  switch (cc.type) {
    case ConfChangeType.AddVoter:
      learners.delete(cc.node)
      voters.add(cc.node)
      break
    case ConfChangeType.AddLearner:
      voters.delete(cc.node)
      learners.add(cc.node)
      break
    case ConfChangeType.RemoveNode:
      voters.delete(cc.node)
      learners.delete(cc.node)
      break
  }
  if (voters.size === 0) return { voters: [...cs.voters], learners: [...cs.learners] }
  return { voters: [...voters].sort(), learners: [...learners].sort() }
}

/**
 * Whether applying `cc` to `cs` would leave the group without voters (such a proposal is dropped). A
 * change whose precondition does not hold would change nothing, so it removes no voter.
 */
export function removesLastVoter (cs: ConfState, cc: ConfChange): boolean {
  if (cc.type === ConfChangeType.AddVoter || !preconditionHolds(cs, cc)) return false
  return cs.voters.length === 1 && cs.voters[0] === cc.node
}

export function confStateEquals (a: ConfState, b: ConfState): boolean {
  const sa = [...a.voters].sort(); const sb = [...b.voters].sort()
  const la = [...a.learners].sort(); const lb = [...b.learners].sort()
  return sa.length === sb.length && la.length === lb.length &&
    sa.every((v, i) => v === sb[i]) && la.every((v, i) => v === lb[i])
}

export function cloneConfState (cs: ConfState): ConfState {
  return { voters: [...cs.voters], learners: [...cs.learners] }
}
