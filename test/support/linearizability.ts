/**
 * Linearizability checking of client histories (Herlihy & Wing 1990), for whole-cluster tests.
 *
 * A history is what clients saw: each operation's input, its output, and the interval between the
 * call and the return on one monotonic clock. It is linearizable when the operations can be put in
 * one sequential order that (1) respects real time — an operation that returned before another was
 * called comes first — and (2) is a legal run of a sequential model: every operation's output is
 * what the model would give at that point. An operation without a return (timed out, connection
 * lost, client crashed) may have taken effect at any time after its call, or never.
 *
 * The search is Wing & Gong's backtracking over "minimal" operations with Lowe's memoization: a
 * configuration is the set of operations linearized so far plus the model state they lead to, and a
 * configuration seen before is never explored again (what can follow depends only on the two). The
 * history is first split by the model's `key` (P-compositionality, Horn & Kroening 2015): a history
 * of independent objects is linearizable if and only if each object's sub-history is, so each key
 * is searched on its own and the search stays small.
 *
 * The checker never reports a violation that is not one: operations whose times tie count as
 * concurrent, a pending operation may be placed anywhere after its call or left out, and a search
 * that runs out of its step budget answers 'unknown', not a verdict.
 *
 * Cost: per key, roughly the operations times 2^(operations in flight at once) — except that every
 * pending write stays "in flight" from its call to the end of the history, and proving a violation
 * means exhausting every placement before it. Keep per-key histories short (many keys, a few dozen
 * operations each) and crashes per key few: 1,000 operations over 20 keys take about a millisecond,
 * while one key with 1,000 operations, 20 lost writes and a violation near the end runs out of the
 * default budget (about a second) and answers 'unknown'.
 */

// ---------------------------------------------------------------------------------------------
// History and model

/** One client operation. */
export interface Operation<I, O> {
  /** Unique within the history. */
  id: number
  /** Who issued it (for explanations; real time alone orders operations). */
  client: string
  /** When it was called, on the clock `ret` uses (ms or a logical clock). */
  call: number
  /**
   * When its output arrived, `>= call`; undefined when none did (timeout, crash, lost connection):
   * the operation may then take effect at any time after `call`, or never.
   */
  ret: number | undefined
  input: I
  /** What the client saw; ignored when `ret` is undefined. */
  output: O | undefined
}

export interface StepResult<S> {
  /** False when the model cannot give `output` for `input` in the state. */
  ok: boolean
  /** The state after the operation (meaningful when ok). */
  state: S
}

/**
 * A sequential specification. With `key`, the model describes one object (one key, one path) and the
 * checker runs it once per key from `init()`.
 */
export interface Model<S, I, O> {
  name: string
  init: () => S
  /**
   * Applies `input` to `state` and says whether `output` is a possible result. `output` is undefined
   * for an operation that never returned: then any result is possible and only the effect counts.
   * Must not change `state` (states are kept in the search's cache).
   */
  step: (state: S, input: I, output: O | undefined) => StepResult<S>
  /** The object an input acts on; operations on different keys are checked separately. */
  key?: (input: I) => string
  /** A canonical encoding of the state: equal states give equal strings. */
  hash: (state: S) => string
  /** For a lossy `hash`: equality of two states whose hashes are equal. */
  equal?: (a: S, b: S) => boolean
  /** True when the input never changes the state; pending read-only operations are dropped. */
  readOnly?: (input: I) => boolean
  describeInput?: (input: I) => string
  describeOutput?: (output: O) => string
  describeState?: (state: S) => string
}

// ---------------------------------------------------------------------------------------------
// Outputs shared by the models

/** The operation succeeded and returns nothing else. */
export interface OkOutput { type: 'ok' }
/** The typed NotFound of dfs: the key or path did not exist. */
export interface NotFoundOutput { type: 'NotFound' }
/** A read returned a value. */
export interface ValueOutput<V> { type: 'value', value: V }
/**
 * A definite failure other than NotFound (InvalidArgument, PermissionDenied, ...): the operation
 * certainly had no effect. The models accept it anywhere as a no-op.
 */
export interface ErrorOutput { type: 'error', name: string }

export const OK: OkOutput = Object.freeze({ type: 'ok' })
export const NOT_FOUND: NotFoundOutput = Object.freeze({ type: 'NotFound' })

export function valueOf<V> (value: V): ValueOutput<V> {
  return { type: 'value', value }
}

/** Names of dfs errors that mean "this did not take effect" (or, for NotFound, are the result). */
const DEFINITE_ERROR_NAMES: ReadonlySet<string> = new Set([
  'NotFound', 'AlreadyExists', 'PermissionDenied', 'InvalidArgument', 'IsADirectory', 'NotADirectory'
])

/**
 * The output a definite error stands for, or undefined for an ambiguous failure (DeadlineExceeded,
 * Aborted, NodeUnreachable, Unavailable, NoQuorum, NotLeader, a lost connection, anything unknown),
 * after which the operation may or may not have taken effect. Matches on `.name` only.
 */
export function definiteErrorOutput (error: unknown): NotFoundOutput | ErrorOutput | undefined {
  const name = typeof error === 'object' && error !== null ? (error as { name?: unknown }).name : undefined
  if (typeof name !== 'string' || !DEFINITE_ERROR_NAMES.has(name)) {
    return undefined
  }
  return name === 'NotFound' ? NOT_FOUND : { type: 'error', name }
}

function isNoOpError (output: unknown): boolean {
  return typeof output === 'object' && output !== null && (output as { type?: unknown }).type === 'error'
}

function describeShared (output: { type: string }): string {
  const fields = output as { type: string, value?: unknown, name?: unknown }
  switch (fields.type) {
    case 'ok': return 'ok'
    case 'NotFound': return 'NotFound'
    case 'value': return JSON.stringify(fields.value)
    case 'error': return `error ${String(fields.name)}`
    default: return JSON.stringify(output)
  }
}

// ---------------------------------------------------------------------------------------------
// Models

export type RegisterValue = string | number | boolean | null
export type RegisterInput<V extends RegisterValue> = { f: 'read' } | { f: 'write', value: V }
export type RegisterOutput<V extends RegisterValue> = OkOutput | ValueOutput<V> | ErrorOutput

/** One read/write register holding `init` at first. A write returns ok, a read the value. */
export function registerModel<V extends RegisterValue> (init: V): Model<V, RegisterInput<V>, RegisterOutput<V>> {
  return {
    name: 'register',
    init: () => init,
    step: (state, input, output) => {
      if (isNoOpError(output)) {
        return { ok: true, state }
      }
      if (input.f === 'write') {
        return { ok: output === undefined || output.type === 'ok', state: input.value }
      }
      return { ok: output === undefined || (output.type === 'value' && output.value === state), state }
    },
    hash: (state) => JSON.stringify(state),
    readOnly: (input) => input.f === 'read',
    describeInput: (input) => input.f === 'write' ? `write ${JSON.stringify(input.value)}` : 'read',
    describeOutput: describeShared,
    describeState: (state) => JSON.stringify(state)
  }
}

export type KvInput =
  | { f: 'put', key: string, value: string }
  | { f: 'get', key: string }
  | { f: 'delete', key: string }
export type KvOutput = OkOutput | NotFoundOutput | ValueOutput<string> | ErrorOutput

/**
 * A map from string keys to string values, checked key by key. `put` returns ok; `get` the value or
 * NotFound; `delete` ok, or NotFound when the key was absent. The state is one key's value.
 */
export function kvModel (): Model<string | undefined, KvInput, KvOutput> {
  return {
    name: 'kv',
    init: () => undefined,
    step: (state, input, output) => {
      if (isNoOpError(output)) {
        return { ok: true, state }
      }
      switch (input.f) {
        case 'put':
          return { ok: output === undefined || output.type === 'ok', state: input.value }
        case 'get':
          return {
            ok: output === undefined ||
              (state === undefined ? output.type === 'NotFound' : output.type === 'value' && output.value === state),
            state
          }
        case 'delete':
          return {
            ok: output === undefined || output.type === (state === undefined ? 'NotFound' : 'ok'),
            state: undefined
          }
      }
    },
    key: (input) => input.key,
    hash: (state) => state === undefined ? '-' : JSON.stringify(state),
    readOnly: (input) => input.f === 'get',
    describeInput: (input) => input.f === 'put' ? `put ${input.key} ${JSON.stringify(input.value)}` : `${input.f} ${input.key}`,
    describeOutput: describeShared,
    describeState: (state) => state === undefined ? 'absent' : JSON.stringify(state)
  }
}

/**
 * Operations on dfs files. `put` replaces the file at `path` atomically with content whose hash is
 * `hash`; `get` reads its content, `stat` its metadata; `rm` removes it.
 */
export type FileInput =
  | { f: 'put', path: string, hash: string }
  | { f: 'get', path: string }
  | { f: 'stat', path: string }
  | { f: 'rm', path: string }

/**
 * - `put`: `{ type: 'ok', version? }`.
 * - `get` / `stat`: `{ type: 'file', hash?, version? }` or NotFound; a field left out is not checked
 *   (a stat that only sees the version, a get that only hashes the content).
 * - `rm`: ok, or NotFound when there was no file.
 * - any: a definite ErrorOutput (no effect).
 */
export type FileOutput =
  | { type: 'ok', version?: number }
  | { type: 'file', hash?: string, version?: number }
  | NotFoundOutput
  | ErrorOutput

/** A file as the model keeps it; null when there is none. */
export type FileState = { hash: string, version: number } | null

export interface FileModelInit {
  /**
   * Track versions as dfs does (1 for a put on an absent path, +1 for each put after; `rm` forgets
   * it). Default true. Without it, version fields in outputs are ignored and states that differ only
   * in their version are one state, which keeps the search smaller.
   */
  versions?: boolean
}

/** The dfs file model, checked path by path. */
export function fileModel (init: FileModelInit = {}): Model<FileState, FileInput, FileOutput> {
  const versions = init.versions ?? true
  return {
    name: 'file',
    init: () => null,
    step: (state, input, output) => {
      if (isNoOpError(output)) {
        return { ok: true, state }
      }
      switch (input.f) {
        case 'put': {
          const version = versions ? (state === null ? 1 : state.version + 1) : 0
          const ok = output === undefined ||
            (output.type === 'ok' && (!versions || output.version === undefined || output.version === version))
          return { ok, state: { hash: input.hash, version } }
        }
        case 'get':
        case 'stat': {
          if (output === undefined) {
            return { ok: true, state }
          }
          if (state === null) {
            return { ok: output.type === 'NotFound', state }
          }
          const ok = output.type === 'file' &&
            (output.hash === undefined || output.hash === state.hash) &&
            (!versions || output.version === undefined || output.version === state.version)
          return { ok, state }
        }
        case 'rm':
          return { ok: output === undefined || output.type === (state === null ? 'NotFound' : 'ok'), state: null }
      }
    },
    key: (input) => input.path,
    hash: (state) => state === null ? '-' : `${state.version}:${state.hash}`,
    readOnly: (input) => input.f === 'get' || input.f === 'stat',
    describeInput: (input) => input.f === 'put' ? `put ${input.path} ${input.hash}` : `${input.f} ${input.path}`,
    describeOutput: (output) => {
      if (output.type === 'file') {
        const parts = [output.hash ?? 'any content']
        if (output.version !== undefined) parts.push(`v${output.version}`)
        return parts.join(' ')
      }
      if (output.type === 'ok' && output.version !== undefined) {
        return `ok v${output.version}`
      }
      return describeShared(output)
    },
    describeState: (state) => state === null ? 'absent' : versions ? `${state.hash} v${state.version}` : state.hash
  }
}

// ---------------------------------------------------------------------------------------------
// Checker

export interface CheckOptions {
  /**
   * Steps the search may take for each key (one step tries one operation or backtracks one). When a
   * key needs more, the answer is 'unknown' unless another key shows a violation. Default 1,000,000.
   */
  stepsMax?: number
  /**
   * Skip the explanation's extra searches (the minimal failing prefix) and report the first failing
   * key as found. Default false.
   */
  quick?: boolean
}

export const CHECK_STEPS_MAX_DEFAULT = 1_000_000

export interface Linearizable {
  ok: true
  /** Keys checked. */
  keys: number
  /** Search steps taken, over all keys. */
  steps: number
}

export interface NotLinearizable<I, O> {
  ok: false
  /** The key whose sub-history is not linearizable ('' for a model without keys). */
  key: string
  /** Human-readable: the longest linearizable prefix and the operation that could not be placed. */
  explanation: string
  /**
   * The operation that could not be placed: the history up to just before its return is
   * linearizable, and with its output it is not. Undefined when the search for it ran out of steps.
   */
  operation: Operation<I, O> | undefined
  /** A linearization of the operations of `key` that returned before `operation` did. */
  linearized: Array<Operation<I, O>>
}

export type CheckResult<I, O> = Linearizable | NotLinearizable<I, O> | 'unknown'

/**
 * Checks that `history` is linearizable with respect to `model`. Operations that never returned may
 * be linearized anywhere after their call, or not at all. Throws on a malformed history.
 */
export function checkLinearizable<S, I, O> (
  model: Model<S, I, O>,
  history: ReadonlyArray<Operation<I, O>>,
  options: CheckOptions = {}
): CheckResult<I, O> {
  const stepsMax = options.stepsMax ?? CHECK_STEPS_MAX_DEFAULT
  if (!Number.isSafeInteger(stepsMax) || stepsMax < 1) {
    throw new RangeError(`stepsMax must be a positive integer, not ${stepsMax}`)
  }
  validate(history)

  const partitions = new Map<string, Array<Operation<I, O>>>()
  for (const op of history) {
    const key = model.key === undefined ? '' : model.key(op.input)
    let list = partitions.get(key)
    if (list === undefined) {
      list = []
      partitions.set(key, list)
    }
    list.push(op)
  }

  let steps = 0
  let unknown = false
  for (const [key, ops] of partitions) {
    const outcome = search(model, toSearchOps(model, ops, Infinity, undefined), stepsMax, false)
    steps += outcome.steps
    if (outcome.kind === 'unknown') {
      unknown = true
    } else if (outcome.kind === 'fail') {
      return options.quick === true
        ? { ok: false, key, explanation: `${label(model, key)}: not linearizable`, operation: undefined, linearized: [] }
        : explain(model, key, ops, stepsMax)
    }
  }
  return unknown ? 'unknown' : { ok: true, keys: partitions.size, steps }
}

function validate<I, O> (history: ReadonlyArray<Operation<I, O>>): void {
  const ids = new Set<number>()
  for (const op of history) {
    if (ids.has(op.id)) {
      throw new TypeError(`operation id ${op.id} appears twice in the history`)
    }
    ids.add(op.id)
    if (!Number.isFinite(op.call)) {
      throw new TypeError(`operation ${op.id} has call time ${op.call}`)
    }
    if (op.ret !== undefined) {
      if (!Number.isFinite(op.ret)) {
        throw new TypeError(`operation ${op.id} has return time ${op.ret}`)
      }
      if (op.ret < op.call) {
        throw new TypeError(`operation ${op.id} returned (${op.ret}) before it was called (${op.call})`)
      }
    }
  }
}

/** An operation as the search sees it: index = bit in the linearized set. */
interface SearchOp<I, O> {
  op: Operation<I, O>
  call: number
  /** Undefined: pending (no return within the history being searched). */
  ret: number | undefined
  output: O | undefined
}

/**
 * The operations of one key cut at time `end`: those called by `end`; an operation counts as returned
 * when `returned(op)` says so (default: it has a return time), otherwise as pending. Pending
 * read-only operations are dropped: they change nothing and their output is unknown.
 */
function toSearchOps<S, I, O> (
  model: Model<S, I, O>,
  ops: ReadonlyArray<Operation<I, O>>,
  end: number,
  returned: ((op: Operation<I, O>) => boolean) | undefined
): Array<SearchOp<I, O>> {
  const out: Array<SearchOp<I, O>> = []
  for (const op of ops) {
    if (op.call > end) {
      continue
    }
    const done = op.ret !== undefined && (returned === undefined || returned(op))
    if (!done && model.readOnly?.(op.input) === true) {
      continue
    }
    out.push({ op, call: op.call, ret: done ? op.ret : undefined, output: done ? op.output : undefined })
  }
  return out
}

/** A call or return event in the search's doubly linked list (Knuth's dancing links). */
interface Entry {
  /** Index into the search's operations. */
  index: number
  isCall: boolean
  time: number
  prev: Entry | null
  next: Entry | null
  /** For a call of an operation that returned: its return entry. */
  ret: Entry | null
}

type SearchOutcome =
  | { kind: 'ok', steps: number, order: number[] }
  | { kind: 'fail', steps: number, deepest: number[] }
  | { kind: 'unknown', steps: number }

/**
 * Wing & Gong with Lowe's cache. Walks the event list from the front: a call whose operation the
 * model accepts in the current state is linearized (lifted out of the list with its return) unless
 * that (set, state) configuration was explored before; reaching a return means that operation
 * should have been linearized already, so the last choice is undone. Success when every operation
 * that returned is linearized (pending ones left over never took effect).
 */
function search<S, I, O> (
  model: Model<S, I, O>,
  ops: ReadonlyArray<SearchOp<I, O>>,
  stepsMax: number,
  trackDeepest: boolean
): SearchOutcome {
  const n = ops.length
  const events: Entry[] = []
  let remaining = 0
  for (let i = 0; i < n; i++) {
    const call: Entry = { index: i, isCall: true, time: ops[i].call, prev: null, next: null, ret: null }
    events.push(call)
    const ret = ops[i].ret
    if (ret !== undefined) {
      call.ret = { index: i, isCall: false, time: ret, prev: null, next: null, ret: null }
      events.push(call.ret)
      remaining++
    }
  }
  // By time; at equal times calls first, so that tied operations count as concurrent (never a
  // false violation from clock resolution).
  events.sort((a, b) => a.time - b.time || (a.isCall === b.isCall ? a.index - b.index : a.isCall ? -1 : 1))
  const head: Entry = { index: -1, isCall: false, time: -Infinity, prev: null, next: null, ret: null }
  let last = head
  for (const e of events) {
    e.prev = last
    last.next = e
    last = e
  }

  const lift = (e: Entry): void => {
    unlink(e)
    if (e.ret !== null) unlink(e.ret)
  }
  const unlift = (e: Entry): void => {
    if (e.ret !== null) relink(e.ret)
    relink(e)
  }

  const linearized = new LinearizedSet(n)
  const cache = new Map<string, Array<{ bits: Uint32Array, state: S }>>()
  /** Returns true when the configuration is new (and records it). */
  const remember = (state: S): boolean => {
    const key = `${linearized.hashA}:${linearized.hashB}:${model.hash(state)}`
    const bucket = cache.get(key)
    if (bucket === undefined) {
      cache.set(key, [{ bits: linearized.copy(), state }])
      return true
    }
    for (const seen of bucket) {
      if (linearized.equals(seen.bits) && (model.equal === undefined || model.equal(seen.state, state))) {
        return false
      }
    }
    bucket.push({ bits: linearized.copy(), state })
    return true
  }

  const stack: Array<{ entry: Entry, state: S }> = []
  let deepest: number[] = []
  let state = model.init()
  let entry = head.next
  let steps = 0
  while (remaining > 0) {
    if (steps >= stepsMax) {
      return { kind: 'unknown', steps }
    }
    steps++
    if (entry === null) {
      // Cannot happen: an operation that returned and is not linearized has its return entry in the
      // list, after every entry the walk can start from.
      throw new Error('linearizability search walked off the event list')
    }
    if (entry.isCall) {
      const i = entry.index
      const next = model.step(state, ops[i].op.input, ops[i].output)
      if (next.ok) {
        linearized.toggle(i)
        if (remember(next.state)) {
          stack.push({ entry, state })
          state = next.state
          if (entry.ret !== null) remaining--
          lift(entry)
          if (trackDeepest && stack.length > deepest.length) {
            deepest = stack.map((s) => s.entry.index)
          }
          entry = head.next
          continue
        }
        linearized.toggle(i)
      }
      entry = entry.next
    } else {
      const top = stack.pop()
      if (top === undefined) {
        return { kind: 'fail', steps, deepest }
      }
      state = top.state
      linearized.toggle(top.entry.index)
      if (top.entry.ret !== null) remaining++
      unlift(top.entry)
      entry = top.entry.next
    }
  }
  return { kind: 'ok', steps, order: stack.map((s) => s.entry.index) }
}

function unlink (e: Entry): void {
  const prev = e.prev
  if (prev === null) throw new Error('unlink of the list head')
  prev.next = e.next
  if (e.next !== null) e.next.prev = prev
}

/** Undoes the last `unlink` of `e`: entries must be relinked in the reverse order of unlinking. */
function relink (e: Entry): void {
  const prev = e.prev
  if (prev === null) throw new Error('relink of the list head')
  prev.next = e
  if (e.next !== null) e.next.prev = e
}

/**
 * A bitset of linearized operations with two incremental Zobrist hashes (an XOR of a fixed random
 * word per member), so that a cache key costs no pass over the words.
 */
class LinearizedSet {
  readonly words: Uint32Array
  readonly #zobrist: Uint32Array
  hashA = 0
  hashB = 0

  constructor (size: number) {
    this.words = new Uint32Array(Math.ceil(size / 32))
    this.#zobrist = new Uint32Array(size * 2)
    let x = 0x9e3779b9
    for (let i = 0; i < this.#zobrist.length; i++) {
      // xorshift32, fixed seed: the hashes need only be well spread, not secret.
      x ^= x << 13; x >>>= 0
      x ^= x >>> 17
      x ^= x << 5; x >>>= 0
      this.#zobrist[i] = x
    }
  }

  toggle (i: number): void {
    this.words[i >>> 5] ^= 1 << (i & 31)
    this.hashA = (this.hashA ^ this.#zobrist[2 * i]) >>> 0
    this.hashB = (this.hashB ^ this.#zobrist[2 * i + 1]) >>> 0
  }

  copy (): Uint32Array {
    return this.words.slice()
  }

  equals (other: Uint32Array): boolean {
    for (let w = 0; w < this.words.length; w++) {
      if (this.words[w] !== other[w]) return false
    }
    return true
  }
}

// ---------------------------------------------------------------------------------------------
// Explanation

/**
 * For a key whose sub-history failed: finds the minimal failing prefix. Cutting the history at the
 * k-th return (later returns become pending, later calls are left out) gives prefixes that are
 * linearizable up to some k and not after (a linearization of a longer prefix, cut, is one of the
 * shorter), so a binary search finds the return that breaks it: that operation could not be placed.
 */
function explain<S, I, O> (
  model: Model<S, I, O>,
  key: string,
  ops: ReadonlyArray<Operation<I, O>>,
  stepsMax: number
): NotLinearizable<I, O> {
  const returned = ops.filter((op) => op.ret !== undefined)
    .sort((a, b) => (a.ret as number) - (b.ret as number) || a.id - b.id)
  const rank = new Map<Operation<I, O>, number>()
  returned.forEach((op, k) => rank.set(op, k))
  const prefix = (k: number): Array<SearchOp<I, O>> =>
    toSearchOps(model, ops, returned[k].ret as number, (op) => (rank.get(op) as number) <= k)

  let lo = -1 // the cut at lo is linearizable (none returned: trivially)
  let hi = returned.length - 1 // the cut at hi is not (the whole history)
  let witness: { ops: Array<SearchOp<I, O>>, order: number[] } = { ops: [], order: [] }
  let gaveUp = false
  while (hi - lo > 1) {
    const mid = (lo + hi) >>> 1
    const cut = prefix(mid)
    const outcome = search(model, cut, stepsMax, false)
    if (outcome.kind === 'unknown') {
      gaveUp = true
      break
    }
    if (outcome.kind === 'ok') {
      lo = mid
      witness = { ops: cut, order: outcome.order }
    } else {
      hi = mid
    }
  }

  const lines: string[] = [`${label(model, key)}: not linearizable.`]
  const linearized = witness.order.map((i) => witness.ops[i].op)
  if (gaveUp) {
    // Report what the failing cut's own search got to.
    const cut = prefix(hi)
    const outcome = search(model, cut, stepsMax, true)
    const order = outcome.kind === 'fail' ? outcome.deepest : []
    lines.push(`The search for the minimal failing prefix ran out of steps; the history up to t=${fmtTime(returned[hi].ret as number)} ` +
      'is not linearizable' + (lo >= 0 ? ` and up to t=${fmtTime(returned[lo].ret as number)} it is.` : '.'))
    if (order.length > 0) {
      lines.push('The longest partial linearization found:')
      lines.push(...describeOrder(model, cut, order))
    }
    return { ok: false, key, explanation: lines.join('\n'), operation: undefined, linearized }
  }

  const culprit = returned[hi]
  lines.push(`Operation #${culprit.id} could not be placed:`)
  lines.push(`  ${describeOp(model, culprit)}`)
  const end = culprit.ret as number
  if (witness.order.length > 0) {
    lines.push(`The operations called by t=${fmtTime(end)}, with #${culprit.id}'s output unknown, are linearizable, e.g. (state after each):`)
    lines.push(...describeOrder(model, witness.ops, witness.order))
  } else {
    lines.push(`Nothing before #${culprit.id} needs to be linearized; the state is ${describeState(model, model.init())} at first.`)
  }
  lines.push(`but no order of the operations called by t=${fmtTime(end)} lets #${culprit.id} return ${describeOutput(model, culprit.output)}.`)
  const concurrent = ops.filter((op) => op !== culprit && op.call <= end && (op.ret === undefined || op.ret >= culprit.call))
  if (concurrent.length > 0) {
    lines.push(`Concurrent with #${culprit.id}: ${concurrent.slice(0, 20).map((op) => `#${op.id}`).join(', ')}${concurrent.length > 20 ? ', ...' : ''}`)
  }
  return { ok: false, key, explanation: lines.join('\n'), operation: culprit, linearized }
}

function label<S, I, O> (model: Model<S, I, O>, key: string): string {
  return model.key === undefined ? `${model.name} model` : `${model.name} model, key ${JSON.stringify(key)}`
}

function describeOrder<S, I, O> (model: Model<S, I, O>, ops: ReadonlyArray<SearchOp<I, O>>, order: readonly number[]): string[] {
  const lines: string[] = []
  let state = model.init()
  for (const i of order) {
    const s = ops[i]
    state = model.step(state, s.op.input, s.output).state
    const note = s.ret === undefined && s.op.ret !== undefined ? ' (output not yet seen)' : ''
    lines.push(`  ${describeOp(model, s.op)}${note}  => ${describeState(model, state)}`)
  }
  return lines
}

function describeOp<S, I, O> (model: Model<S, I, O>, op: Operation<I, O>): string {
  const input = model.describeInput?.(op.input) ?? JSON.stringify(op.input)
  const interval = `[${fmtTime(op.call)}, ${op.ret === undefined ? 'no return' : fmtTime(op.ret)}]`
  const output = op.ret === undefined ? '?' : describeOutput(model, op.output)
  return `#${op.id} ${op.client} ${input} ${interval} -> ${output}`
}

function describeOutput<S, I, O> (model: Model<S, I, O>, output: O | undefined): string {
  if (output === undefined) return '?'
  return model.describeOutput?.(output) ?? JSON.stringify(output)
}

function describeState<S, I, O> (model: Model<S, I, O>, state: S): string {
  return model.describeState?.(state) ?? model.hash(state)
}

function fmtTime (t: number): string {
  return Number.isInteger(t) ? String(t) : t.toFixed(3)
}

// ---------------------------------------------------------------------------------------------
// Recorder

export interface HistoryRecorderInit<O> {
  /** Monotonic clock in ms. Default `performance.now`. */
  now?: () => number
  /**
   * Maps an error to the output it stands for when it is definite (the operation did not happen, or
   * NotFound is its result), or to undefined when it is ambiguous. Default `definiteErrorOutput`,
   * whose outputs (NotFound, ErrorOutput) all three models accept.
   */
  definite?: (error: unknown) => O | undefined
  /** Operations the recorder keeps at most. Default 1,000,000. */
  opsMax?: number
}

export const RECORDER_OPS_MAX_DEFAULT = 1_000_000

/**
 * Records a history as a test runs. Call `invoke` right before sending a request and `complete` or
 * `fail` right after its answer (or failure) arrives: the interval must contain the real one.
 *
 *     const token = recorder.invoke('c1', { f: 'get', path })
 *     try {
 *       recorder.complete(token, { type: 'file', hash: await client.get(path) })
 *     } catch (err) {
 *       recorder.fail(token, err) // NotFound is an output; DeadlineExceeded leaves it pending
 *     }
 */
export class HistoryRecorder<I, O> {
  readonly #now: () => number
  readonly #definite: (error: unknown) => O | undefined
  readonly #opsMax: number
  readonly #ops: Array<Operation<I, O>> = []
  /** Operations invoked and not yet completed or failed, by id. */
  readonly #open = new Map<number, Operation<I, O>>()

  constructor (init: HistoryRecorderInit<O> = {}) {
    this.#now = init.now ?? (() => performance.now())
    this.#definite = init.definite ?? (definiteErrorOutput as (error: unknown) => O | undefined)
    this.#opsMax = init.opsMax ?? RECORDER_OPS_MAX_DEFAULT
  }

  /** Starts an operation; returns its token (the operation's id). */
  invoke (client: string, input: I): number {
    if (this.#ops.length >= this.#opsMax) {
      throw new RangeError(`history recorder is full (${this.#opsMax} operations)`)
    }
    const op: Operation<I, O> = { id: this.#ops.length, client, call: this.#now(), ret: undefined, input, output: undefined }
    this.#ops.push(op)
    this.#open.set(op.id, op)
    return op.id
  }

  /** The operation returned `output`. */
  complete (token: number, output: O): void {
    const op = this.#take(token)
    op.ret = this.#now()
    op.output = output
  }

  /**
   * The operation failed. A definite error (NotFound, InvalidArgument, ...) is recorded as its
   * output; 'timeout' or an ambiguous error leaves it without a return: it may have taken effect.
   */
  fail (token: number, reason: unknown): void {
    const op = this.#take(token)
    const output = reason === 'timeout' ? undefined : this.#definite(reason)
    if (output !== undefined) {
      op.ret = this.#now()
      op.output = output
    }
  }

  /** A copy of the history so far; operations still open are pending. */
  history (): Array<Operation<I, O>> {
    return this.#ops.map((op) => ({ ...op }))
  }

  /** Operations invoked and not yet completed or failed. */
  get openCount (): number {
    return this.#open.size
  }

  #take (token: number): Operation<I, O> {
    const op = this.#open.get(token)
    if (op === undefined) {
      throw new Error(`operation ${token} is not open: ${Number.isInteger(token) && token >= 0 && token < this.#ops.length ? 'it already finished' : 'no such token'}`)
    }
    this.#open.delete(token)
    return op
  }
}
