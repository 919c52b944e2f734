/**
 * Seeded randomized simulation of the Raft core (tier 3 of the consensus tests, see STYLE.md).
 *
 * - the checker catches broken histories (a checker that cannot fail proves nothing);
 * - a seed replays the same run (equal trace hashes);
 * - a few hundred seeds of 3- and 5-node groups under message loss, delay, reordering, duplication (not
 *   of forwarded proposals, which the transport never sends twice),
 *   partitions, crashes and restarts, membership changes and snapshots pass every property.
 *
 * A failing seed is in the assertion message; replay it with
 *   npm run sim:core -- --seeds 1 --start SEED --nodes N --verbose
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { Checker, type LogView } from './sim/checker.js'
import { SimViolation, type Property } from './sim/errors.js'
import { Rng } from './sim/rng.js'
import { runSimulation, type SimStats } from './sim/simulator.js'

const SEEDS_3 = 200
const SEEDS_5 = 100
const STEPS_3 = 8000
const STEPS_5 = 8000

function newChecker (): Checker {
  return new Checker({ seed: 42, step: () => 7, traceTail: () => ['a trace line'] })
}

function expectViolation (property: Property, f: () => void): void {
  try {
    f()
  } catch (err) {
    assert.instance(err, SimViolation)
    const v = err as SimViolation
    assert.is(v.name, 'SimViolation')
    assert.is(v.property, property)
    assert.is(v.seed, 42)
    assert.is(v.step, 7)
    assert.ok(v.message.includes('seed 42') && v.message.includes('step 7') && v.message.includes('a trace line'))
    return
  }
  assert.unreachable(`expected a ${property} violation`)
}

/** A log view over a plain list of [index, term, hash] triples. */
function log (first: number, entries: Array<[number, number]>): LogView {
  return {
    firstIndex: () => first,
    lastIndex: () => first + entries.length - 1,
    entryAt: (i: number) => {
      const e = entries[i - first]
      return e === undefined ? undefined : { term: e[0], hash: e[1] }
    }
  }
}

test('rng: a seed gives the same stream, another seed another one', () => {
  const a = new Rng(1)
  const b = new Rng(1)
  const c = new Rng(2)
  const xs = Array.from({ length: 8 }, () => a.uint32())
  assert.equal(Array.from({ length: 8 }, () => b.uint32()), xs)
  assert.not.equal(Array.from({ length: 8 }, () => c.uint32()), xs)
  for (let i = 0; i < 1000; i++) {
    const f = a.next()
    assert.ok(f >= 0 && f < 1)
  }
})

test('checker: two leaders in one term break election safety', () => {
  const c = newChecker()
  c.observeLeader('n1', 3, log(1, []))
  c.observeLeader('n1', 3, log(1, [])) // the same leader seen again is fine
  c.observeLeader('n2', 4, log(1, []))
  expectViolation('election-safety', () => c.observeLeader('n3', 3, log(1, [])))
})

test('checker: two different entries applied at one index break state machine safety', () => {
  const c = newChecker()
  c.observeApply('n1', 1, 1, 0xaaaa, 11, 1)
  c.observeApply('n2', 1, 1, 0xaaaa, 11, 1)
  expectViolation('state-machine-safety', () => c.observeApply('n3', 1, 2, 0xbbbb, 12, 2))
})

test('checker: equal entries but different resulting state break state machine safety', () => {
  const c = newChecker()
  c.observeApply('n1', 1, 1, 0xaaaa, 11, 1)
  expectViolation('state-machine-safety', () => c.observeApply('n2', 1, 1, 0xaaaa, 99, 1))
})

test('checker: a snapshot whose state differs from what was applied is caught', () => {
  const c = newChecker()
  c.observeApply('n1', 1, 1, 0xaaaa, 11, 1)
  expectViolation('state-machine-safety', () => c.observeRestore('n2', 1, 12, false))
})

test('checker: applying out of order, or a snapshot older than what was applied, breaks apply order', () => {
  const c = newChecker()
  c.observeApply('n1', 1, 1, 0xa, 1, 1)
  expectViolation('apply-order', () => c.observeApply('n1', 3, 1, 0xc, 3, 1))
  const d = newChecker()
  d.observeApply('n1', 1, 1, 0xa, 1, 1)
  d.observeApply('n1', 2, 1, 0xb, 2, 1)
  expectViolation('apply-order', () => d.observeRestore('n1', 2, 2, false))
  d.observeRestore('n1', 2, 2, true) // a restart from disk starts over
})

test('checker: a stale read breaks read linearizability; a write acknowledged after the read may be missing', () => {
  const c = newChecker()
  c.beginRead('r0', 'n2')
  c.observeWriteAcked('w1')
  c.completeRead('r0', 'n2', () => false, 0) // w1 was acknowledged after r0 was issued
  c.beginRead('r1', 'n2')
  c.completeRead('r1', 'n2', w => w === 'w1', 1)
  c.beginRead('r2', 'n3')
  expectViolation('read-linearizability', () => c.completeRead('r2', 'n3', () => false, 0))
})

test('checker: the same (index, term) with different contents or predecessors breaks log matching', () => {
  const c = newChecker()
  c.observeAppend('n1', 5, 2, 0xaaaa, 2)
  c.observeAppend('n2', 5, 2, 0xaaaa, 2)
  expectViolation('log-matching', () => c.observeAppend('n3', 5, 2, 0xbbbb, 2))
  const d = newChecker()
  d.observeAppend('n1', 5, 2, 0xaaaa, 1)
  expectViolation('log-matching', () => d.observeAppend('n2', 5, 2, 0xaaaa, 2))
})

test('checker: a leader lacking an entry committed in an earlier term breaks leader completeness', () => {
  const c = newChecker()
  c.observeCommitted(1, 1, 0xa, 1)
  c.observeCommitted(2, 1, 0xb, 1)
  c.observeLeader('n1', 2, log(1, [[1, 0xa], [1, 0xb]]))
  c.observeLeader('n2', 3, log(2, [[1, 0xb]])) // index 1 is in its snapshot
  expectViolation('leader-completeness', () => c.observeLeader('n3', 4, log(1, [[1, 0xa]])))
  // A leader already in place when a commit of an older term becomes known is checked too.
  const d = newChecker()
  d.observeLeader('n1', 5, log(1, [[1, 0xa]]))
  expectViolation('leader-completeness', () => d.observeCommitted(1, 1, 0xdead, 3))
})

test('checker: a commit index that goes back or passes the log is caught', () => {
  const c = newChecker()
  c.observeCommitIndex('n1', 5, 6)
  expectViolation('commit-index', () => c.observeCommitIndex('n1', 4, 6))
  expectViolation('commit-index', () => newChecker().observeCommitIndex('n1', 7, 6))
})

test('simulation: the same seed replays the same run', () => {
  const a = runSimulation({ seed: 1234, nodes: 3, steps: 1500 })
  const b = runSimulation({ seed: 1234, nodes: 3, steps: 1500 })
  const c = runSimulation({ seed: 1235, nodes: 3, steps: 1500 })
  assert.equal(b, a)
  assert.is.not(c.traceHash, a.traceHash)
  const d = runSimulation({ seed: 77, nodes: 5, steps: 1500 })
  const e = runSimulation({ seed: 77, nodes: 5, steps: 1500 })
  assert.equal(e, d)
})

/** Runs seeds with a deliberately broken driver; returns the violations, by seed. */
function sabotaged (sabotage: 'early-reads' | 'forget-votes' | 'eager-retry', nodes: number, seeds: number, steps: number): Map<number, SimViolation> {
  const found = new Map<number, SimViolation>()
  for (let seed = 1; seed <= seeds; seed++) {
    try {
      runSimulation({ seed, nodes, steps, sabotage })
    } catch (err) {
      if (!(err instanceof SimViolation)) throw err
      found.set(seed, err)
    }
  }
  return found
}

test('simulation: serving reads before applying up to the read index is caught as a stale read', () => {
  const found = sabotaged('early-reads', 3, 40, 3000)
  assert.ok(found.size > 0, 'no seed caught the stale reads')
  for (const v of found.values()) assert.is(v.property, 'read-linearizability', v.message)
  // A failing seed replays the same run, to the same step.
  const [seed, v] = [...found][0]
  try {
    runSimulation({ seed, nodes: 3, steps: 3000, sabotage: 'early-reads' })
    assert.unreachable('the failing seed passed on replay')
  } catch (err) {
    assert.instance(err, SimViolation)
    assert.is((err as SimViolation).step, v.step)
    assert.is((err as SimViolation).message, v.message)
  }
})

test('simulation: a driver that does not persist its vote is caught voting twice in one term', () => {
  const found = sabotaged('forget-votes', 5, 150, 3000)
  const props = new Set([...found.values()].map(v => v.property))
  assert.ok(props.has('election-safety'), `no double vote caught; violations: ${[...props].join(', ')}`)
})

test('simulation: proposing a write again once its proposer\'s term moved on, not once a later term is applied, is caught applying it twice', () => {
  // The safe rule (RaftGroup's, and the simulator's driver): a proposal not applied by the time an entry
  // of a later term is applied can never commit. Merely seeing a later term proves nothing: the old
  // leader may have replicated the entry to a quorum, and the new leader commits it.
  const found = sabotaged('eager-retry', 3, 40, 3000)
  assert.ok(found.size > 0, 'no seed caught a write applied twice')
  for (const v of found.values()) assert.is(v.property, 'at-most-once', v.message)
})

function runSeeds (nodes: number, seeds: number, steps: number, start: number): SimStats[] {
  const failures: string[] = []
  const all: SimStats[] = []
  for (let seed = start; seed < start + seeds; seed++) {
    try {
      all.push(runSimulation({ seed, nodes, steps }))
    } catch (err) {
      const e = err as Error
      failures.push(err instanceof SimViolation ? `seed ${seed}: ${err.property}: ${err.detail}` : `seed ${seed}: ${e.stack ?? e.message}`)
    }
  }
  if (failures.length > 0) {
    assert.unreachable(`${failures.length} of ${seeds} seeds failed at ${nodes} nodes:\n${failures.join('\n')}`)
  }
  return all
}

function total (all: SimStats[], k: keyof SimStats): number {
  return all.reduce((s, x) => s + (x[k] as number), 0)
}

test(`simulation: ${SEEDS_3} seeds of a 3-node group keep every property`, () => {
  const all = runSeeds(3, SEEDS_3, STEPS_3, 1)
  // The faults really happened (a simulation that exercises nothing proves nothing).
  assert.ok(total(all, 'elections') >= SEEDS_3)
  assert.ok(total(all, 'writesAcked') > 0)
  assert.ok(total(all, 'reads') > 0)
  assert.ok(total(all, 'crashes') > 0)
  assert.ok(total(all, 'snapshotsInstalled') > 0)
  assert.ok(total(all, 'confChanges') > 0)
  // Proposals lost with their leader were proposed again, and none was applied twice (at-most-once).
  assert.ok(total(all, 'proposalsRetried') > 0)
})

test(`simulation: ${SEEDS_5} seeds of a 5-node group keep every property`, () => {
  const all = runSeeds(5, SEEDS_5, STEPS_5, 10_001)
  assert.ok(total(all, 'elections') >= SEEDS_5)
  assert.ok(total(all, 'proposalsRetried') > 0)
  assert.ok(total(all, 'writesAcked') > 0)
  assert.ok(total(all, 'snapshotsInstalled') > 0)
  assert.ok(total(all, 'confChanges') > 0)
})

test.run()
