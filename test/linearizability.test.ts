import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { DeadlineExceededError, InvalidArgumentError, NodeUnreachableError, NotFoundError } from '@dfs/api'
import {
  HistoryRecorder,
  NOT_FOUND,
  OK,
  checkLinearizable,
  fileModel,
  kvModel,
  registerModel,
  valueOf
} from './support/linearizability.js'
import type {
  CheckResult,
  FileInput,
  FileOutput,
  KvInput,
  KvOutput,
  Model,
  NotLinearizable,
  Operation,
  RegisterInput,
  RegisterOutput
} from './support/linearizability.js'

// ---------------------------------------------------------------------------------------------
// Helpers

type RegOp = Operation<RegisterInput<number>, RegisterOutput<number>>
type FileOp = Operation<FileInput, FileOutput>

/** Builds histories by hand: ids in order of appearance, `ret` undefined for no return. */
class Script<I, O> {
  readonly ops: Array<Operation<I, O>> = []

  add (client: string, call: number, ret: number | undefined, input: I, output?: O): number {
    const id = this.ops.length + 1
    this.ops.push({ id, client, call, ret, input, output: ret === undefined ? undefined : output })
    return id
  }
}

class RegisterScript extends Script<RegisterInput<number>, RegisterOutput<number>> {
  write (client: string, call: number, ret: number | undefined, value: number): number {
    return this.add(client, call, ret, { f: 'write', value }, OK)
  }

  read (client: string, call: number, ret: number | undefined, value: number): number {
    return this.add(client, call, ret, { f: 'read' }, valueOf(value))
  }
}

class FileScript extends Script<FileInput, FileOutput> {
  put (client: string, call: number, ret: number | undefined, path: string, hash: string, version?: number): number {
    return this.add(client, call, ret, { f: 'put', path, hash }, { type: 'ok', version })
  }

  get (client: string, call: number, ret: number | undefined, path: string, hash: string | null, version?: number): number {
    return this.add(client, call, ret, { f: 'get', path }, hash === null ? NOT_FOUND : { type: 'file', hash, version })
  }

  rm (client: string, call: number, ret: number | undefined, path: string, found: boolean): number {
    return this.add(client, call, ret, { f: 'rm', path }, found ? OK : NOT_FOUND)
  }
}

const register = registerModel<number>(0)

function assertOk<I, O> (result: CheckResult<I, O>, message?: string): void {
  if (result === 'unknown') {
    assert.unreachable(`${message ?? 'history'}: expected linearizable, got unknown`)
    return
  }
  if (!result.ok) {
    assert.unreachable(`${message ?? 'history'}: expected linearizable, got:\n${result.explanation}`)
  }
}

function assertViolation<I, O> (result: CheckResult<I, O>, message?: string): NotLinearizable<I, O> {
  if (result === 'unknown' || result.ok) {
    assert.unreachable(`${message ?? 'history'}: expected a violation, got ${JSON.stringify(result)}`)
    throw new Error('unreachable')
  }
  return result
}

/** Seeded PRNG (xorshift32) so that a failing seed replays. */
function rng (seed: number): { next: () => number, int: (n: number) => number, chance: (p: number) => boolean } {
  let x = (Math.imul(seed, 2654435761) ^ 0x5bd1e995) >>> 0 || 1
  const next = (): number => {
    x ^= x << 13; x >>>= 0
    x ^= x >>> 17
    x ^= x << 5; x >>>= 0
    return x / 4294967296
  }
  return { next, int: (n) => Math.floor(next() * n), chance: (p) => next() < p }
}

interface GenerateOptions {
  seed: number
  ops: number
  keys: number
  /** Clients running at once (each runs one operation at a time). */
  clients: number
  /** Chance that an operation gets no return (about half of those took effect). */
  pendingRate: number
  /** Distinct contents a put chooses from: few make many equal states and ambiguous reads. */
  contents: number
  /** Chance that the clock does not advance between two events (tied times). */
  tieRate?: number
  /** Put versions into the outputs. */
  versions?: boolean
}

/**
 * Runs a true sequential execution of the file semantics (a Map, independent of the model) under
 * random concurrency: each operation takes effect at one instant strictly inside its interval.
 * Some operations lose their return (the client "crashes"): some of those took effect, some never.
 */
function generateFileHistory (options: GenerateOptions): FileOp[] {
  const r = rng(options.seed)
  const truth = new Map<string, { hash: string, version: number }>()
  const history: FileOp[] = []
  type Running = { op: FileOp, phase: 'called' | 'applied', result: FileOutput | undefined }
  const slots: Array<Running | null> = new Array(options.clients).fill(null)
  const generations: number[] = new Array(options.clients).fill(0)
  let t = 0
  let issued = 0
  const tick = (): void => {
    if (!r.chance(options.tieRate ?? 0)) t++
  }
  const apply = (input: FileInput): FileOutput => {
    const file = truth.get(input.path)
    switch (input.f) {
      case 'put': {
        const version = file === undefined ? 1 : file.version + 1
        truth.set(input.path, { hash: input.hash, version })
        return { type: 'ok', version: options.versions === true ? version : undefined }
      }
      case 'get':
        return file === undefined ? NOT_FOUND : { type: 'file', hash: file.hash, version: options.versions === true ? file.version : undefined }
      case 'stat':
        return file === undefined ? NOT_FOUND : { type: 'file', version: options.versions === true ? file.version : undefined }
      case 'rm':
        truth.delete(input.path)
        return file === undefined ? NOT_FOUND : OK
    }
  }
  while (issued < options.ops || slots.some((s) => s !== null)) {
    const c = r.int(options.clients)
    const running = slots[c]
    if (running === null) {
      if (issued >= options.ops) continue
      const path = `/k${r.int(options.keys)}`
      const dice = r.int(10)
      const input: FileInput = dice < 4
        ? { f: 'put', path, hash: `h${r.int(options.contents)}` }
        : dice < 7 ? { f: 'get', path } : dice < 8 ? { f: 'stat', path } : { f: 'rm', path }
      const op: FileOp = { id: ++issued, client: `c${c}.${generations[c]}`, call: t, ret: undefined, input, output: undefined }
      history.push(op)
      slots[c] = { op, phase: 'called', result: undefined }
      tick()
    } else if (running.phase === 'called') {
      if (r.chance(options.pendingRate / 2)) {
        // Crashed before taking effect: never returns, never happens.
        slots[c] = null
        generations[c]++
      } else {
        tick() // the effect is strictly after the call
        running.result = apply(running.op.input)
        running.phase = 'applied'
        tick()
      }
    } else {
      if (r.chance(options.pendingRate / 2)) {
        // Took effect, but the answer was lost.
        slots[c] = null
        generations[c]++
      } else {
        tick()
        running.op.ret = t
        running.op.output = running.result
        slots[c] = null
        tick()
      }
    }
  }
  return history
}

const MUTATIONS = ['h-never-written', NOT_FOUND] as const

function isMutation (op: FileOp): boolean {
  return op.input.f === 'put' || op.input.f === 'rm'
}

/**
 * A completed get whose result is fixed by real time alone: no mutation of its path overlaps it or
 * is pending before it returns, and of the mutations before it one is last in real time. Returns
 * the content it must see (null: no file), or undefined when the get is not determined.
 */
function determinedContent (history: FileOp[], read: FileOp): string | null | undefined {
  if (read.input.f !== 'get' || read.ret === undefined) return undefined
  const path = read.input.path
  const before: FileOp[] = []
  for (const op of history) {
    if (op.input.path !== path || !isMutation(op)) continue
    if (op.ret !== undefined && op.ret < read.call) {
      before.push(op)
    } else if (!(op.call > read.ret)) {
      return undefined // overlaps the read, or pending and may take effect before it
    }
  }
  if (before.length === 0) return null
  const last = before.reduce((a, b) => a.call > b.call ? a : b)
  if (!before.every((op) => op === last || (op.ret as number) < last.call)) return undefined
  return last.input.f === 'put' ? last.input.hash : null
}

function withOutput (history: FileOp[], id: number, output: FileOutput): FileOp[] {
  return history.map((op) => op.id === id ? { ...op, output } : op)
}

// ---------------------------------------------------------------------------------------------
// Register: textbook histories

const Register = suite('linearizability: register')

Register('sequential history is linearizable', () => {
  const h = new RegisterScript()
  h.read('a', 0, 1, 0)
  h.write('a', 2, 3, 1)
  h.read('b', 4, 5, 1)
  h.write('b', 6, 7, 2)
  h.read('a', 8, 9, 2)
  assertOk(checkLinearizable(register, h.ops))
})

Register('a read concurrent with a write may see either value', () => {
  for (const seen of [0, 1]) {
    const h = new RegisterScript()
    h.write('a', 0, 10, 1)
    h.read('b', 2, 3, seen)
    assertOk(checkLinearizable(register, h.ops), `read saw ${seen}`)
  }
})

Register('a read may not see a value written after the read returned', () => {
  const h = new RegisterScript()
  const read = h.read('a', 0, 2, 1)
  h.write('b', 5, 6, 1)
  const result = assertViolation(checkLinearizable(register, h.ops))
  assert.is(result.operation?.id, read)
  assert.match(result.explanation, `#${read}`)
})

Register('a read may not return a stale value after a newer write completed', () => {
  const h = new RegisterScript()
  h.write('a', 0, 1, 1)
  h.write('a', 2, 3, 2)
  const stale = h.read('b', 4, 5, 1)
  const result = assertViolation(checkLinearizable(register, h.ops))
  assert.is(result.operation?.id, stale)
  // The longest linearizable prefix: both writes, in order.
  assert.equal(result.linearized.map((op) => op.id), [1, 2])
  assert.match(result.explanation, 'could not be placed')
  assert.match(result.explanation, 'write 2')
})

Register('new-old inversion: once a read saw the new value, a later read may not see the old one', () => {
  const h = new RegisterScript()
  h.write('a', 0, 10, 1)
  h.read('b', 1, 2, 1)
  const old = h.read('c', 3, 4, 0)
  const result = assertViolation(checkLinearizable(register, h.ops))
  assert.is(result.operation?.id, old)
})

Register('overlapping writes admit several orders, but only consistent ones', () => {
  // w1 and w2 overlap; three reads in sequence during both.
  const valid = [[0, 1, 2], [0, 2, 1], [1, 1, 2], [2, 2, 1], [0, 0, 0], [1, 2, 2], [2, 1, 1]]
  const invalid = [[1, 2, 1], [2, 1, 2], [1, 0, 1], [2, 0, 2], [1, 2, 0]]
  for (const [list, ok] of [[valid, true], [invalid, false]] as const) {
    for (const reads of list) {
      const h = new RegisterScript()
      h.write('a', 0, 10, 1)
      h.write('b', 1, 9, 2)
      reads.forEach((v, i) => h.read('c', 2 + 2 * i, 3 + 2 * i, v))
      const result = checkLinearizable(register, h.ops)
      if (ok) assertOk(result, `reads ${reads.join(',')}`)
      else assertViolation(result, `reads ${reads.join(',')}`)
    }
  }
})

Register('operations whose times tie count as concurrent', () => {
  const h = new RegisterScript()
  h.write('a', 5, 5, 1)
  h.read('b', 5, 5, 0)
  assertOk(checkLinearizable(register, h.ops))
})

Register('a pending write may be observed later, and then stays', () => {
  const observed = new RegisterScript()
  observed.write('a', 0, undefined, 1)
  observed.read('b', 5, 6, 1)
  observed.read('b', 7, 8, 1)
  assertOk(checkLinearizable(register, observed.ops))

  const reverted = new RegisterScript()
  reverted.write('a', 0, undefined, 1)
  reverted.read('b', 5, 6, 1)
  const back = reverted.read('b', 7, 8, 0)
  assert.is(assertViolation(checkLinearizable(register, reverted.ops)).operation?.id, back)
})

Register('a pending write may never take effect, or take effect late', () => {
  const never = new RegisterScript()
  never.write('a', 0, undefined, 1)
  never.read('b', 5, 6, 0)
  never.read('b', 100, 101, 0)
  assertOk(checkLinearizable(register, never.ops))

  const late = new RegisterScript()
  late.write('a', 0, undefined, 1)
  late.read('b', 5, 6, 0)
  late.write('b', 7, 8, 2)
  late.read('b', 9, 10, 2)
  late.read('b', 11, 12, 1) // the lost write of 1 landed after the write of 2
  assertOk(checkLinearizable(register, late.ops))
})

Register('a pending write cannot take effect before it was called', () => {
  const h = new RegisterScript()
  h.read('b', 0, 1, 1)
  h.write('a', 2, undefined, 1)
  assertViolation(checkLinearizable(register, h.ops))
})

Register('a pending write takes effect once', () => {
  // Seen before the write of 2, so it landed before it: it cannot be seen again after.
  const h = new RegisterScript()
  h.write('a', 0, undefined, 1)
  h.read('b', 1, 2, 1)
  h.write('b', 3, 4, 2)
  h.read('b', 5, 6, 2)
  const again = h.read('b', 7, 8, 1)
  assert.is(assertViolation(checkLinearizable(register, h.ops)).operation?.id, again)
})

Register('a definite error is a no-op; a pending read is ignored', () => {
  const h = new RegisterScript()
  h.add('a', 0, 1, { f: 'write', value: 7 }, { type: 'error', name: 'InvalidArgument' })
  h.add('b', 0, undefined, { f: 'read' })
  h.read('b', 2, 3, 0)
  assertOk(checkLinearizable(register, h.ops))
})

Register('the explanation shows the operation, the prefix and the states', () => {
  const h = new RegisterScript()
  h.write('alice', 0, 1, 1)
  h.write('bob', 2, 3, 2)
  h.read('carol', 4, 5, 1)
  const result = assertViolation(checkLinearizable(register, h.ops))
  const text = result.explanation
  assert.match(text, 'register model: not linearizable')
  assert.match(text, 'Operation #3 could not be placed')
  assert.match(text, '#3 carol read [4, 5] -> 1')
  assert.match(text, '#1 alice write 1 [0, 1] -> ok  => 1')
  assert.match(text, '#2 bob write 2 [2, 3] -> ok  => 2')
  assert.match(text, 'lets #3 return 1')
})

Register('malformed histories are rejected', () => {
  assert.throws(() => checkLinearizable(register, [
    { id: 1, client: 'a', call: 5, ret: 4, input: { f: 'read' }, output: valueOf(0) }
  ]), /before it was called/)
  assert.throws(() => checkLinearizable(register, [
    { id: 1, client: 'a', call: 0, ret: 1, input: { f: 'read' }, output: valueOf(0) },
    { id: 1, client: 'a', call: 2, ret: 3, input: { f: 'read' }, output: valueOf(0) }
  ]), /twice/)
})

Register.run()

// ---------------------------------------------------------------------------------------------
// Budget

const Budget = suite('linearizability: step budget')

/** Many overlapping writes with lost answers and reads that pin few of them: a big search. */
function hardRegisterHistory (writes: number): RegOp[] {
  const h = new RegisterScript()
  for (let i = 1; i <= writes; i++) h.write(`w${i}`, i, i % 3 === 0 ? undefined : 1000 + i, i)
  h.read('r', 2000, 2001, 1)
  return h.ops
}

Budget('a search that runs out of steps says unknown, never a verdict', () => {
  assertOk(checkLinearizable(register, hardRegisterHistory(12)))
  assert.is(checkLinearizable(register, hardRegisterHistory(12), { stepsMax: 10 }), 'unknown')

  const broken = hardRegisterHistory(12)
  broken.push({ id: 99, client: 'r', call: 2002, ret: 2003, input: { f: 'read' }, output: valueOf(-1) })
  assertViolation(checkLinearizable(register, broken))
  assert.is(checkLinearizable(register, broken, { stepsMax: 10 }), 'unknown')
})

Budget('a violation in one key is reported even when another key is unknown', () => {
  const model = kvModel()
  const ops: Array<Operation<KvInput, KvOutput>> = []
  let id = 0
  for (let i = 1; i <= 30; i++) ops.push({ id: ++id, client: `w${i}`, call: i, ret: 500 + i, input: { f: 'put', key: 'hard', value: `v${i}` }, output: OK })
  ops.push({ id: ++id, client: 'r', call: 600, ret: 601, input: { f: 'get', key: 'hard' }, output: valueOf('v1') })
  ops.push({ id: ++id, client: 'x', call: 0, ret: 1, input: { f: 'put', key: 'easy', value: 'a' }, output: OK })
  ops.push({ id: ++id, client: 'x', call: 2, ret: 3, input: { f: 'get', key: 'easy' }, output: NOT_FOUND })
  assert.is(checkLinearizable(model, ops.slice(0, 31), { stepsMax: 40 }), 'unknown')
  const result = assertViolation(checkLinearizable(model, ops, { stepsMax: 40 }))
  assert.is(result.key, 'easy')
  assert.is(result.operation?.id, id)
})

Budget.run()

// ---------------------------------------------------------------------------------------------
// Key-value map and files

const Files = suite('linearizability: kv and file models')

Files('kv: get, put and delete with NotFound', () => {
  const model = kvModel()
  const ok: Array<Operation<KvInput, KvOutput>> = [
    { id: 1, client: 'a', call: 0, ret: 1, input: { f: 'get', key: 'x' }, output: NOT_FOUND },
    { id: 2, client: 'a', call: 2, ret: 3, input: { f: 'delete', key: 'x' }, output: NOT_FOUND },
    { id: 3, client: 'a', call: 4, ret: 5, input: { f: 'put', key: 'x', value: 'v' }, output: OK },
    { id: 4, client: 'b', call: 6, ret: 9, input: { f: 'delete', key: 'x' }, output: OK },
    { id: 5, client: 'c', call: 7, ret: 8, input: { f: 'get', key: 'x' }, output: valueOf('v') },
    { id: 6, client: 'a', call: 10, ret: 11, input: { f: 'get', key: 'x' }, output: NOT_FOUND }
  ]
  assertOk(checkLinearizable(model, ok))
  const bad = ok.map((op) => op.id === 2 ? { ...op, output: OK } : op)
  assert.is(assertViolation(checkLinearizable(model, bad)).operation?.id, 2)
})

Files('file: a get may not see a version overwritten before it began', () => {
  const h = new FileScript()
  h.put('a', 0, 1, '/f', 'hA')
  h.put('b', 2, 3, '/f', 'hB')
  const get = h.get('c', 4, 5, '/f', 'hA')
  const result = assertViolation(checkLinearizable(fileModel(), h.ops))
  assert.is(result.key, '/f')
  assert.is(result.operation?.id, get)
  assert.match(result.explanation, 'key "/f"')
  assert.match(result.explanation, 'hB v2')
})

Files('file: a get concurrent with a put may see either version, but not nothing', () => {
  for (const [seen, ok] of [['hA', true], ['hB', true], [null, false]] as const) {
    const h = new FileScript()
    h.put('a', 0, 1, '/f', 'hA')
    h.put('b', 2, 6, '/f', 'hB')
    h.get('c', 3, 4, '/f', seen)
    const result = checkLinearizable(fileModel(), h.ops)
    if (ok) assertOk(result, `get saw ${String(seen)}`)
    else assertViolation(result, `get saw ${String(seen)}`)
  }
})

Files('file: rm returns NotFound on an absent file, and only one of two racing rms succeeds', () => {
  const h = new FileScript()
  h.rm('a', 0, 1, '/f', false)
  h.put('a', 2, 3, '/f', 'hA')
  h.rm('a', 4, 8, '/f', true)
  h.rm('b', 5, 7, '/f', false)
  h.get('c', 9, 10, '/f', null)
  assertOk(checkLinearizable(fileModel(), h.ops))

  const both = new FileScript()
  both.put('a', 0, 1, '/f', 'hA')
  both.rm('a', 2, 8, '/f', true)
  both.rm('b', 3, 7, '/f', true)
  assertViolation(checkLinearizable(fileModel(), both.ops))

  const early = new FileScript()
  early.rm('a', 0, 1, '/f', true)
  assertViolation(checkLinearizable(fileModel(), early.ops))
})

Files('file: versions count puts and restart after rm', () => {
  const h = new FileScript()
  h.put('a', 0, 1, '/f', 'hA', 1)
  h.put('a', 2, 3, '/f', 'hA', 2)
  h.get('b', 4, 5, '/f', 'hA', 2)
  h.add('b', 6, 7, { f: 'stat', path: '/f' }, { type: 'file', version: 2 })
  h.rm('a', 8, 9, '/f', true)
  h.put('a', 10, 11, '/f', 'hB', 1)
  assertOk(checkLinearizable(fileModel(), h.ops))

  // Same content, older version: a stale metadata read the hash alone would not catch.
  const stale = new FileScript()
  stale.put('a', 0, 1, '/f', 'hA')
  stale.put('a', 2, 3, '/f', 'hA')
  stale.add('b', 4, 5, { f: 'stat', path: '/f' }, { type: 'file', version: 1 })
  assertViolation(checkLinearizable(fileModel(), stale.ops))
  assertOk(checkLinearizable(fileModel({ versions: false }), stale.ops))
})

Files('file: a put whose answer was lost may land later', () => {
  const h = new FileScript()
  h.put('a', 0, 1, '/f', 'hA')
  h.put('b', 2, undefined, '/f', 'hB')
  h.get('c', 3, 4, '/f', 'hA')
  h.get('c', 50, 51, '/f', 'hB')
  assertOk(checkLinearizable(fileModel(), h.ops))
  h.get('c', 52, 53, '/f', 'hA')
  assertViolation(checkLinearizable(fileModel(), h.ops))
})

Files('P-compositionality: each path is checked on its own', () => {
  // 200 paths, each with overlapping puts and reads that are linearizable only per path. A map model
  // over all paths would have to interleave them; per path the search is tiny.
  const h = new FileScript()
  for (let k = 0; k < 200; k++) {
    const path = `/dir/${k}`
    const t = k % 7 // paths overlap each other in time
    h.put(`a${k}`, t, t + 10, path, `x${k}`)
    h.put(`b${k}`, t + 1, t + 9, path, `y${k}`)
    h.get(`c${k}`, t + 2, t + 3, path, k % 2 === 0 ? `x${k}` : `y${k}`)
    h.get(`c${k}`, t + 11, t + 12, path, k % 2 === 0 ? `y${k}` : `x${k}`)
  }
  const result = checkLinearizable(fileModel(), h.ops)
  assertOk(result)
  assert.is(result !== 'unknown' && result.ok ? result.keys : 0, 200)

  // An operation on another path does not order or explain anything on this one.
  h.get('z', 100, 101, '/dir/150', 'x151')
  const violation = assertViolation(checkLinearizable(fileModel(), h.ops))
  assert.is(violation.key, '/dir/150')
  assert.is(violation.operation?.id, h.ops.length)
})

Files('P-compositionality keeps the search small', () => {
  // The same kv history checked per key and as one map: the map search must interleave the keys.
  const perKey = kvModel()
  const whole: Model<Map<string, string>, KvInput, KvOutput> = {
    name: 'whole-map',
    init: () => new Map(),
    step: (state, input, output) => {
      const one = perKey.step(state.get(input.key), input, output)
      const next = new Map(state)
      if (one.state === undefined) next.delete(input.key)
      else next.set(input.key, one.state)
      return { ok: one.ok, state: next }
    },
    hash: (state) => JSON.stringify([...state].sort()),
    readOnly: perKey.readOnly
  }
  const ops: Array<Operation<KvInput, KvOutput>> = []
  let id = 0
  // Three overlapping puts per key; the read after them pins the first-called put as the last.
  for (let k = 0; k < 6; k++) {
    for (let w = 0; w < 3; w++) {
      ops.push({ id: ++id, client: `w${k}.${w}`, call: w, ret: 100 - w, input: { f: 'put', key: `k${k}`, value: `v${w}` }, output: OK })
    }
    ops.push({ id: ++id, client: `r${k}`, call: 200, ret: 201, input: { f: 'get', key: `k${k}` }, output: valueOf('v0') })
  }
  const split = checkLinearizable(perKey, ops)
  assertOk(split)
  const splitSteps = split !== 'unknown' && split.ok ? split.steps : Infinity
  assert.ok(splitSteps < 1000, `per key: ${splitSteps} steps`)
  const joint = checkLinearizable(whole, ops, { stepsMax: 100 * splitSteps })
  assert.is(joint, 'unknown', 'the joint search is over 100 times larger')
})

Files.run()

// ---------------------------------------------------------------------------------------------
// Randomized histories from true executions

const Random = suite('linearizability: randomized')

const SEEDS = 200

Random('histories from a true sequential execution always pass', () => {
  for (let seed = 1; seed <= SEEDS; seed++) {
    const versions = seed % 2 === 0
    const history = generateFileHistory({
      seed, ops: 60, keys: 3, clients: 5, pendingRate: 0.1, contents: 3, tieRate: seed % 3 === 0 ? 0.3 : 0, versions
    })
    assertOk(checkLinearizable(fileModel({ versions }), history), `seed ${seed}`)
  }
})

Random('a get flipped to content never written fails, and names that get', () => {
  let checked = 0
  for (let seed = 1; seed <= SEEDS; seed++) {
    const history = generateFileHistory({ seed, ops: 60, keys: 3, clients: 5, pendingRate: 0.1, contents: 3 })
    const gets = history.filter((op) => op.input.f === 'get' && op.ret !== undefined)
    if (gets.length === 0) continue
    const target = gets[seed % gets.length]
    const mutated = withOutput(history, target.id, { type: 'file', hash: MUTATIONS[0] })
    const result = assertViolation(checkLinearizable(fileModel({ versions: false }), mutated), `seed ${seed}, #${target.id}`)
    assert.is(result.operation?.id, target.id, `seed ${seed}`)
    checked++
  }
  assert.ok(checked > SEEDS * 0.9)
})

Random('a get whose result real time fixes fails when flipped to any other result', () => {
  let checked = 0
  for (let seed = 1; seed <= SEEDS; seed++) {
    const history = generateFileHistory({ seed, ops: 40, keys: 2, clients: 3, pendingRate: 0.05, contents: 3 })
    for (const read of history) {
      const expected = determinedContent(history, read)
      if (expected === undefined) continue
      const seen = read.output as FileOutput
      assert.equal(seen.type === 'file' ? seen.hash : null, expected, `seed ${seed}: the generator's truth`)
      for (const other of [null, 'h0', 'h1', 'h2']) {
        if (other === expected) continue
        const mutated = withOutput(history, read.id, other === null ? NOT_FOUND : { type: 'file', hash: other })
        const result = assertViolation(checkLinearizable(fileModel({ versions: false }), mutated), `seed ${seed}, #${read.id} -> ${String(other)}`)
        assert.is(result.operation?.id, read.id)
        checked++
      }
    }
  }
  assert.ok(checked > 100, `${checked} determined mutations`)
})

Random('flipping one random output usually fails', () => {
  let failed = 0
  let total = 0
  for (let seed = 1; seed <= SEEDS; seed++) {
    const history = generateFileHistory({ seed, ops: 40, keys: 2, clients: 3, pendingRate: 0.05, contents: 3, versions: true })
    const r = rng(seed + 7919)
    const done = history.filter((op) => op.ret !== undefined && op.input.f !== 'put')
    const target = done[r.int(done.length)]
    const out = target.output as FileOutput
    let flipped: FileOutput
    if (target.input.f === 'rm') {
      flipped = out.type === 'ok' ? NOT_FOUND : OK
    } else if (out.type === 'file') {
      flipped = r.chance(0.5) || out.version === undefined ? NOT_FOUND : { ...out, version: out.version + 1 }
    } else {
      flipped = { type: 'file', hash: `h${r.int(3)}`, version: 1 + r.int(3) }
    }
    const result = checkLinearizable(fileModel(), withOutput(history, target.id, flipped))
    assert.ok(result !== 'unknown', `seed ${seed}`)
    total++
    if (!result.ok) failed++
  }
  assert.ok(failed / total > 0.8, `${failed} of ${total} mutations were caught`)
})

Random('1,000 operations over 20 paths with 5 clients check in a few thousand steps', () => {
  // Tests assert no timings (DESIGN.md): the step count is the deterministic measure of the search.
  for (const seed of [1, 2, 3]) {
    const history = generateFileHistory({ seed, ops: 1000, keys: 20, clients: 5, pendingRate: 0.02, contents: 4, tieRate: 0.1 })
    const result = checkLinearizable(fileModel(), history)
    assertOk(result, `seed ${seed}`)
    assert.ok(result !== 'unknown' && result.ok && result.steps < 5000, `seed ${seed}: ${JSON.stringify(result)}`)

    // And a violation in the same history is found and explained.
    const get = history.find((op) => op.input.f === 'get' && op.ret !== undefined && op.id > 900) as FileOp
    const violation = assertViolation(checkLinearizable(fileModel(), withOutput(history, get.id, { type: 'file', hash: 'h-never-written' })))
    assert.is(violation.operation?.id, get.id)
  }
})

Random.run()

// ---------------------------------------------------------------------------------------------
// Recorder

const Recorder = suite('linearizability: HistoryRecorder')

function fakeClock (): { now: () => number, advance: (ms: number) => void } {
  let t = 0
  return { now: () => t, advance: (ms) => { t += ms } }
}

Recorder('records calls, returns and outputs on its clock', () => {
  const clock = fakeClock()
  const rec = new HistoryRecorder<FileInput, FileOutput>({ now: clock.now })
  const put = rec.invoke('c1', { f: 'put', path: '/a', hash: 'h1' })
  clock.advance(2)
  const get = rec.invoke('c2', { f: 'get', path: '/a' })
  clock.advance(3)
  rec.complete(put, { type: 'ok', version: 1 })
  clock.advance(1)
  rec.complete(get, { type: 'file', hash: 'h1' })
  assert.equal(rec.history(), [
    { id: put, client: 'c1', call: 0, ret: 5, input: { f: 'put', path: '/a', hash: 'h1' }, output: { type: 'ok', version: 1 } },
    { id: get, client: 'c2', call: 2, ret: 6, input: { f: 'get', path: '/a' }, output: { type: 'file', hash: 'h1' } }
  ])
  assertOk(checkLinearizable(fileModel(), rec.history()))
})

Recorder('a definite error is an output; a timeout or an ambiguous error leaves the operation pending', () => {
  const clock = fakeClock()
  const rec = new HistoryRecorder<FileInput, FileOutput>({ now: clock.now })
  const get = rec.invoke('c1', { f: 'get', path: '/a' })
  const bad = rec.invoke('c1', { f: 'put', path: '', hash: 'h' })
  const late = rec.invoke('c2', { f: 'put', path: '/a', hash: 'h1' })
  const lost = rec.invoke('c3', { f: 'put', path: '/a', hash: 'h2' })
  const gone = rec.invoke('c4', { f: 'rm', path: '/a' })
  const open = rec.invoke('c5', { f: 'put', path: '/b', hash: 'h3' })
  clock.advance(1)
  rec.fail(get, new NotFoundError('no file /a', { path: '/a' }))
  rec.fail(bad, new InvalidArgumentError('empty path'))
  rec.fail(late, 'timeout')
  rec.fail(lost, new DeadlineExceededError('deadline'))
  rec.fail(gone, new NodeUnreachableError('connection reset'))
  const h = rec.history()
  assert.equal(h[0], { id: get, client: 'c1', call: 0, ret: 1, input: { f: 'get', path: '/a' }, output: NOT_FOUND })
  assert.equal(h[1].output, { type: 'error', name: 'InvalidArgument' })
  for (const id of [late, lost, gone, open]) {
    assert.is(h[id].ret, undefined, `#${id} is pending`)
    assert.is(h[id].output, undefined)
  }
  assert.is(rec.openCount, 1)
  assertOk(checkLinearizable(fileModel(), h))
})

Recorder('a token finishes once', () => {
  const rec = new HistoryRecorder<RegisterInput<number>, RegisterOutput<number>>()
  const t = rec.invoke('c1', { f: 'read' })
  rec.complete(t, valueOf(0))
  assert.throws(() => rec.complete(t, valueOf(0)), /already finished/)
  assert.throws(() => rec.fail(t, 'timeout'), /already finished/)
  assert.throws(() => rec.complete(42, valueOf(0)), /no such token/)
  const history = rec.history()
  assert.ok(history[0].ret !== undefined && history[0].ret >= history[0].call, 'performance.now() by default')
})

Recorder('a recorder has a limit', () => {
  const rec = new HistoryRecorder<RegisterInput<number>, RegisterOutput<number>>({ opsMax: 2 })
  rec.invoke('a', { f: 'read' })
  rec.invoke('a', { f: 'read' })
  assert.throws(() => rec.invoke('a', { f: 'read' }), /full/)
})

Recorder('concurrent async clients against a linearizable store record a linearizable history', async () => {
  // An in-memory "server" that applies each request at one instant between random delays.
  const files = new Map<string, string>()
  const rec = new HistoryRecorder<FileInput, FileOutput>()
  const r = rng(42)
  const delay = async (): Promise<void> => await new Promise((resolve) => setTimeout(resolve, r.int(3)))
  const client = async (name: string): Promise<void> => {
    for (let i = 0; i < 20; i++) {
      const path = `/p${r.int(3)}`
      const input: FileInput = r.chance(0.5) ? { f: 'put', path, hash: `${name}-${i}` } : { f: 'get', path }
      const token = rec.invoke(name, input)
      try {
        await delay()
        let output: FileOutput
        if (input.f === 'put') {
          files.set(path, input.hash)
          output = OK
        } else {
          const hash = files.get(path)
          if (hash === undefined) throw new NotFoundError(`no file ${path}`)
          output = { type: 'file', hash }
        }
        await delay()
        if (r.chance(0.1)) throw new DeadlineExceededError('answer lost')
        rec.complete(token, output)
      } catch (err) {
        rec.fail(token, err)
      }
    }
  }
  await Promise.all(['c1', 'c2', 'c3', 'c4'].map(client))
  assert.is(rec.openCount, 0)
  assertOk(checkLinearizable(fileModel({ versions: false }), rec.history()))
})

Recorder.run()
