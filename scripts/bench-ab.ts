// npm run bench:ab: one of the project's benchmarks run alternately against another revision and
// this working tree, so that both see the same stretch of a shared machine. On this VM the same code
// measured a 256 MiB get at 281–295 MiB/s one hour and 325–342 the next: a change judged by runs an
// hour apart is judged by the weather. Prints each figure of the bench's --json document per run and
// the medians side by side; asserts nothing.
//
//   npm run bench:ab -- REV [--runs 2] [--json] -- SCRIPT [ARGS...]
//   npm run bench:ab -- da2762d --runs 3 -- bench:replication --reps 3
//   npm run bench:ab -- HEAD~1 -- bench:cluster --clients 16,64 --seconds 8 --failovers 0
//
// REV is checked out (detached) in a temporary git worktree whose node_modules are hard links of this
// tree's (same dependencies: a revision with other ones needs its own `npm ci`), built (`tsc -b` and
// the client bundle) and removed afterwards. This tree must be built already (`npm test` or `npm run
// build` does it). The runs alternate REV, this tree, then this tree, REV, and so on, so that a drift
// of the machine's speed over the session does not favour either side. SCRIPT must print one JSON
// document on stdout under --json (bench:replication and bench:cluster do); every number in it,
// nested ones named by their path (`opsPerSec.16`), is a row.
import { execFileSync, spawn } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fmt, humanLog, numberOption } from './bench-stats.js'

const argv = process.argv.slice(2)
const split = argv.indexOf('--')
if (split < 1 || split === argv.length - 1) {
  console.error('usage: npm run bench:ab -- REV [--runs N] [--json] -- SCRIPT [ARGS...]')
  process.exit(2)
}
const own = argv.slice(0, split)
const [script, ...scriptArgs] = argv.slice(split + 1)
const rev = own[0]
const runs = numberOption(own, 'runs', 2)
const json = own.includes('--json')
const log = humanLog(json)
const root = process.cwd()

/** The numbers of a --json document, by their dotted path. */
function figures (doc: unknown, prefix = '', out = new Map<string, number>()): Map<string, number> {
  if (typeof doc === 'number' && Number.isFinite(doc)) out.set(prefix, doc)
  else if (doc !== null && typeof doc === 'object') {
    for (const [k, v] of Object.entries(doc)) figures(v, prefix === '' ? k : `${prefix}.${k}`, out)
  }
  return out
}

/** Runs `npm run -s SCRIPT -- ARGS --json` in `cwd`; its stderr (the human lines) goes to ours. */
async function runBench (cwd: string): Promise<Map<string, number>> {
  const child = spawn('npm', ['run', '-s', script, '--', ...scriptArgs, '--json'], { cwd, stdio: ['ignore', 'pipe', 'inherit'] })
  let stdout = ''
  child.stdout.setEncoding('utf8').on('data', (s: string) => { stdout += s })
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve))
  if (code !== 0) throw new Error(`${script} in ${cwd} exited with ${code}`)
  return figures(JSON.parse(stdout))
}

/** Hard links of every node_modules directory of the workspace (root, src/api, plugins/*) into `dir`. */
function linkModules (dir: string): void {
  const places = ['.', 'src/api', ...readdirSync(join(root, 'plugins')).map((p) => `plugins/${p}`)]
  for (const place of places) {
    const from = join(root, place, 'node_modules')
    if (existsSync(from) && existsSync(join(dir, place))) execFileSync('cp', ['-al', from, join(dir, place, 'node_modules')])
  }
}

const dir = join(mkdtempSync(join(tmpdir(), 'dfs-bench-ab-')), 'tree')
const sh = (cmd: string, args: string[], cwd = root): void => { execFileSync(cmd, args, { cwd, stdio: ['ignore', 'ignore', 'inherit'] }) }
const results = { [rev]: [] as Array<Map<string, number>>, 'this tree': [] as Array<Map<string, number>> }
try {
  log(`checking out ${rev} in ${dir}`)
  sh('git', ['worktree', 'add', '--detach', dir, rev])
  linkModules(dir)
  sh('npx', ['tsc', '-b'], dir)
  sh('npm', ['run', '-s', 'bundle:client'], dir)
  for (let r = 0; r < runs; r++) {
    const order: Array<[keyof typeof results, string]> = r % 2 === 0 ? [[rev, dir], ['this tree', root]] : [['this tree', root], [rev, dir]]
    for (const [side, cwd] of order) {
      log(`run ${r + 1} of ${runs}: ${side}`)
      results[side].push(await runBench(cwd))
    }
  }
} finally {
  try { sh('git', ['worktree', 'remove', '--force', dir]) } catch { /* already gone */ }
  sh('git', ['worktree', 'prune'])
  rmSync(dirname(dir), { recursive: true, force: true })
}

/** The median of `xs` (the mean of the middle two for an even count); NaN for none. */
function median (xs: number[]): number {
  if (xs.length === 0) return NaN
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2
}

const keys = [...new Set([...results[rev], ...results['this tree']].flatMap((m) => [...m.keys()]))]
const medianOf = (side: keyof typeof results, key: string): number => median(results[side].map((m) => m.get(key)).filter((x): x is number => x !== undefined))
if (json) {
  console.log(JSON.stringify(Object.fromEntries(keys.map((k) => [k, {
    [rev]: results[rev].map((m) => m.get(k) ?? null),
    thisTree: results['this tree'].map((m) => m.get(k) ?? null)
  }]))))
} else {
  const runsOf = (side: keyof typeof results, key: string): string => results[side].map((m) => fmt(m.get(key) ?? NaN)).join(' / ')
  const rows = [['figure', `${rev} (runs)`, 'this tree (runs)', `${rev} median`, 'this tree median', 'this / rev'],
    ...keys.map((k) => [k, runsOf(rev, k), runsOf('this tree', k), fmt(medianOf(rev, k)), fmt(medianOf('this tree', k)), (medianOf('this tree', k) / medianOf(rev, k)).toFixed(2)])]
  const widths = rows[0].map((_, i) => Math.max(...rows.map((row) => row[i].length)))
  for (const row of rows) console.log(row.map((c, i) => i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i])).join('  '))
  console.log(`${runs} runs each, alternated; ${script} ${scriptArgs.join(' ')} (bench:cluster's ms rows: lower is better)`)
}
