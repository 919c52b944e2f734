/**
 * npm run sim:core -- --seeds N [--start S] [--nodes 3|5] [--steps K] [--verbose]
 *
 * Runs N seeded randomized simulations of a Raft group (seeds S, S+1, …), checking the safety
 * properties after every step and liveness after the faults stop. Prints a progress line, each failing
 * seed with the property it broke, and a summary; exits 1 if any seed failed. A failing seed replays
 * the same run: `npm run sim:core -- --seeds 1 --start SEED --nodes N --verbose` prints its whole trace.
 * `--sabotage early-reads|forget-votes|eager-retry` breaks the driver on purpose, to see the checks fire.
 */
import { parseArgs } from 'node:util'
import { intArg, usageError } from './cli-args.js'
import { runSimulation, SimViolation, type SimOptions, type SimStats } from '../test/raft/sim/index.js'

const USAGE = 'usage: npm run sim:core -- --seeds N [--start S] [--nodes 3|5] [--steps K] [--verbose]\n' +
  '       [--sabotage early-reads|forget-votes|eager-retry]   (break the driver on purpose: the run must fail)'

const { values } = parseArgs({
  options: {
    seeds: { type: 'string', default: '100' },
    start: { type: 'string', default: '1' },
    nodes: { type: 'string', default: '3' },
    steps: { type: 'string' },
    verbose: { type: 'boolean', default: false },
    sabotage: { type: 'string', default: 'none' },
    help: { type: 'boolean', default: false }
  },
  strict: true
})
if (values.help === true) {
  process.stdout.write(`${USAGE}\n`)
  process.exit(0)
}
const seeds = intArg(values.seeds, 'seeds', 100, USAGE)
const start = intArg(values.start, 'start', 1, USAGE)
const nodes = intArg(values.nodes, 'nodes', 3, USAGE)
if (nodes !== 3 && nodes !== 5) usageError('--nodes must be 3 or 5', USAGE)
const steps = intArg(values.steps, 'steps', nodes === 5 ? 4000 : 3000, USAGE)
const verbose = values.verbose === true
const sabotage = values.sabotage as SimOptions['sabotage']
if (sabotage !== 'none' && sabotage !== 'early-reads' && sabotage !== 'forget-votes' && sabotage !== 'eager-retry') {
  usageError('--sabotage must be none, early-reads, forget-votes or eager-retry', USAGE)
}
const tty = process.stdout.isTTY === true && !verbose

const sums = {
  steps: 0,
  ticks: 0,
  elections: 0,
  proposals: 0,
  proposalsRetried: 0,
  writesApplied: 0,
  reads: 0,
  snapshotsSent: 0,
  snapshotsInstalled: 0,
  confChanges: 0,
  crashes: 0,
  partitions: 0,
  messagesDelivered: 0
}
const livenessTicks: number[] = []
const failures: Array<{ seed: number, property: string, message: string }> = []
const t0 = performance.now()

function progress (done: number): string {
  const s = (performance.now() - t0) / 1000
  return `seeds ${done}/${seeds}  steps ${sums.steps}  failures ${failures.length}  ${s.toFixed(1)} s`
}

for (let i = 0; i < seeds; i++) {
  const seed = start + i
  let stats: SimStats | undefined
  try {
    stats = runSimulation({
      seed,
      nodes,
      steps,
      sabotage,
      onTrace: verbose ? line => { process.stdout.write(`[${seed}] ${line}\n`) } : undefined
    })
  } catch (err) {
    const property = err instanceof SimViolation ? err.property : 'harness-error'
    const message = err instanceof Error ? (err instanceof SimViolation ? err.message : `${err.stack ?? err.message}`) : String(err)
    failures.push({ seed, property, message })
    if (tty) process.stdout.write('\r\x1b[K')
    process.stdout.write(`FAIL seed ${seed} (${nodes} nodes): ${message}\n`)
  }
  if (stats !== undefined) {
    for (const k of Object.keys(sums) as Array<keyof typeof sums>) sums[k] += stats[k]
    livenessTicks.push(stats.livenessTicks)
    if (verbose) {
      process.stdout.write(`seed ${seed}: ok, ${stats.steps} steps, ${stats.elections} elections, ` +
        `${stats.writesApplied} writes applied, trace ${stats.traceHash}\n`)
    }
  }
  if (tty) process.stdout.write(`\r\x1b[K${progress(i + 1)}`)
  else if (!verbose && ((i + 1) % Math.max(1, Math.floor(seeds / 10)) === 0 || i + 1 === seeds)) {
    process.stdout.write(`${progress(i + 1)}\n`)
  }
}
if (tty) process.stdout.write('\n')

livenessTicks.sort((a, b) => a - b)
const pct = (p: number): number => livenessTicks.length === 0 ? 0 : livenessTicks[Math.min(livenessTicks.length - 1, Math.floor(p * livenessTicks.length))]
const rows: Array<[string, string]> = [
  ['nodes', String(nodes)],
  ['seeds', `${seeds} (${start}..${start + seeds - 1})`],
  ['passed / failed', `${seeds - failures.length} / ${failures.length}`],
  ['steps', String(sums.steps)],
  ['ticks', String(sums.ticks)],
  ['messages delivered', String(sums.messagesDelivered)],
  ['elections', String(sums.elections)],
  ['proposals accepted', String(sums.proposals)],
  ['proposals applied', String(sums.writesApplied)],
  ['proposals retried (lost with their term)', String(sums.proposalsRetried)],
  ['reads served', String(sums.reads)],
  ['snapshots sent', String(sums.snapshotsSent)],
  ['snapshots installed', String(sums.snapshotsInstalled)],
  ['conf changes', String(sums.confChanges)],
  ['crashes', String(sums.crashes)],
  ['partitions', String(sums.partitions)],
  ['ticks heal→live (median / p99)', `${pct(0.5)} / ${pct(0.99)}`],
  ['wall time', `${((performance.now() - t0) / 1000).toFixed(1)} s`]
]
const w = Math.max(...rows.map(r => r[0].length))
process.stdout.write(`\n${rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join('\n')}\n`)
if (failures.length > 0) {
  process.stdout.write(`\nfailing seeds: ${failures.map(f => `${f.seed} (${f.property})`).join(', ')}\n`)
  process.exit(1)
}
