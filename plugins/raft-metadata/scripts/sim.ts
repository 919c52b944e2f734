/**
 * npm run sim -- [--seeds N] [--start S] [--steps K] [--layout L] [--sabotage NAME] [--verbose] [--json]
 *
 * Runs N seeded simulations (seeds S, S+1, …) of the Raft stack that ships — RaftGroup, LevelStorage
 * and RaftLogDb on a disk that loses unsynced writes, RaftTransport on a faulty network — checking the
 * properties after every event and durability and liveness after the heal (see
 * test/raft/sim/stack/stack-simulator.ts). Prints each failing seed with the property it broke and a
 * summary; exits 1 if any seed failed. A failing seed replays the same run:
 * `npm run sim -- --seeds 1 --start SEED --verbose` prints its whole trace.
 * `--sabotage commit-behind-snapshot|lonely-early-send|in-flight-dropped` puts a known defect back
 * (src/mutations.ts): then the seeds that fail are the ones that caught it.
 * The Raft core alone has its own, faster simulation: `npm run sim:core`.
 */
import { parseArgs } from 'node:util'
import { intArg, usageError } from './cli-args.js'
import { SimViolation } from '../test/raft/sim/index.js'
import { runStackSimulation, STACK_LAYOUTS } from '../test/raft/sim/stack/stack-simulator.js'
import type { StackLayout, StackSabotage, StackSimStats } from '../test/raft/sim/stack/stack-simulator.js'

const SABOTAGES = ['none', 'commit-behind-snapshot', 'lonely-early-send', 'in-flight-dropped']
const USAGE = 'usage: npm run sim -- [--seeds N] [--start S] [--steps K] [--layout "3 voters"|"5 voters"|"1 voter + 2 learners"|"1 voter"]\n' +
  `       [--sabotage ${SABOTAGES.slice(1).join('|')}] [--verbose] [--json]`

const { values } = parseArgs({
  options: {
    seeds: { type: 'string', default: '100' },
    start: { type: 'string', default: '1' },
    steps: { type: 'string', default: '10000' },
    layout: { type: 'string' },
    sabotage: { type: 'string', default: 'none' },
    verbose: { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
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
const steps = intArg(values.steps, 'steps', 10000, USAGE)
const layout = values.layout as StackLayout | undefined
if (layout !== undefined && !(STACK_LAYOUTS as readonly string[]).includes(layout)) usageError(`--layout must be one of ${STACK_LAYOUTS.join(', ')}`, USAGE)
const sabotage = values.sabotage as StackSabotage
if (!SABOTAGES.includes(sabotage)) usageError(`--sabotage must be one of ${SABOTAGES.join(', ')}`, USAGE)
const verbose = values.verbose === true
const json = values.json === true
const tty = process.stdout.isTTY === true && !verbose && !json

const SUMS = ['steps', 'virtualMs', 'proposals', 'acked', 'retried', 'requeued', 'reads', 'crashes', 'powerLosses', 'wholeClusterCrashes',
  'restarts', 'partitions', 'membershipChanges', 'snapshots', 'snapshotsRestored', 'earlySends', 'diskBatchesLost', 'writesFailedAfter'] as const
const sums = Object.fromEntries(SUMS.map((k) => [k, 0])) as Record<typeof SUMS[number], number>
const liveness: number[] = []
const failures: Array<{ seed: number, property: string, message: string }> = []
const t0 = performance.now()

for (let i = 0; i < seeds; i++) {
  const seed = start + i
  try {
    const stats: StackSimStats = await runStackSimulation({
      seed,
      steps,
      sabotage,
      layout,
      onTrace: verbose ? (line) => { process.stdout.write(`[${seed}] ${line}\n`) } : undefined
    })
    for (const k of SUMS) sums[k] += stats[k]
    liveness.push(stats.livenessMs)
    if (verbose) process.stdout.write(`seed ${seed}: ok (${stats.layout}), ${stats.steps} events, trace ${stats.traceHash}\n`)
  } catch (err) {
    const property = err instanceof SimViolation ? err.property : 'harness-error'
    const message = err instanceof SimViolation ? err.message : `${(err as Error).stack ?? String(err)}`
    failures.push({ seed, property, message })
    if (!json) {
      if (tty) process.stdout.write('\r\x1b[K')
      process.stdout.write(`FAIL seed ${seed}: ${verbose ? message : message.split('\n')[0]}\n`)
    }
  }
  if (tty) process.stdout.write(`\r\x1b[Kseeds ${i + 1}/${seeds}  failures ${failures.length}  ${((performance.now() - t0) / 1000).toFixed(1)} s`)
}
if (tty) process.stdout.write('\n')

const wallS = (performance.now() - t0) / 1000
liveness.sort((a, b) => a - b)
const pct = (p: number): number => liveness.length === 0 ? 0 : liveness[Math.min(liveness.length - 1, Math.floor(p * liveness.length))]
const byProperty: Record<string, number> = {}
for (const f of failures) byProperty[f.property] = (byProperty[f.property] ?? 0) + 1
if (json) {
  process.stdout.write(JSON.stringify({
    seeds, start, stepsPerSeed: steps, layout: layout ?? null, sabotage, passed: seeds - failures.length, failed: failures.length,
    failedSeeds: failures.map((f) => ({ seed: f.seed, property: f.property })), byProperty, ...sums,
    livenessMsMedian: pct(0.5), livenessMsP99: pct(0.99), wallSeconds: Number(wallS.toFixed(1)),
    secondsPer1000Seeds: seeds === 0 ? 0 : Number((wallS * 1000 / seeds).toFixed(1))
  }) + '\n')
} else {
  const rows: Array<[string, string]> = [
    ['seeds', `${seeds} (${start}..${start + seeds - 1}), ${steps} fault-phase events each${layout !== undefined ? `, layout ${layout}` : ''}`],
    ['sabotage', sabotage],
    ['passed / failed', `${seeds - failures.length} / ${failures.length}`],
    ...Object.entries(byProperty).map(([p, n]): [string, string] => [`  failed on ${p}`, String(n)]),
    ['events', String(sums.steps)],
    ['virtual time', `${(sums.virtualMs / 1000).toFixed(0)} s`],
    ['writes proposed / acknowledged', `${sums.proposals} / ${sums.acked}`],
    ['proposals retried (term) / requeued (dropped)', `${sums.retried} / ${sums.requeued}`],
    ['linearizable reads checked', String(sums.reads)],
    ['crashes (power losses) / whole-cluster', `${sums.crashes} (${sums.powerLosses}) / ${sums.wholeClusterCrashes}`],
    ['restarts', String(sums.restarts)],
    ['partitions', String(sums.partitions)],
    ['membership changes applied', String(sums.membershipChanges)],
    ['snapshots made / restored', `${sums.snapshots} / ${sums.snapshotsRestored}`],
    ['leader messages sent before fsync', String(sums.earlySends)],
    ['pending disk batches lost in crashes', String(sums.diskBatchesLost)],
    ['writes failed after their bytes left', String(sums.writesFailedAfter)],
    ['heal → live, median / p99', `${pct(0.5)} / ${pct(0.99)} ms (virtual)`],
    ['wall time', `${wallS.toFixed(1)} s (${seeds === 0 ? 0 : (wallS * 1000 / seeds).toFixed(0)} s per 1000 seeds)`]
  ]
  const w = Math.max(...rows.map((r) => r[0].length))
  process.stdout.write(`\n${rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join('\n')}\n`)
  if (failures.length > 0) process.stdout.write(`\nfailing seeds: ${failures.map((f) => `${f.seed} (${f.property})`).join(', ')}\n`)
}
process.exit(failures.length > 0 ? 1 : 0)
