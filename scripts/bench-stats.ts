// What the benchmark scripts share besides their node processes (bench-nodes.ts): options,
// percentiles, number formatting, per-process CPU and the result table.
import { readFile } from 'node:fs/promises'

/** The number after `--name` in `args` (a non-negative number), or `def` when absent. */
export function numberOption (args: string[], name: string, def: number): number {
  const i = args.indexOf(`--${name}`)
  const v = i >= 0 ? Number(args[i + 1]) : def
  if (!Number.isFinite(v) || v < 0) throw new Error(`--${name} needs a number`)
  return v
}

/** The p-quantile of `xs` (nearest rank); NaN for none. */
export function pct (xs: number[], p: number): number {
  if (xs.length === 0) return NaN
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))]
}

/**
 * Ops a bench runs before its latency rows, spread over the processes it measures (`--warmup N`).
 * V8 compiles a process's hot paths only after thousands of calls: the p50 of successive windows of
 * 500 empty puts through one connection to a fresh three-node cluster went 2.97, 1.89, 1.69, 1.34,
 * 1.23, 1.16, 1.09, 1.07 ms, then 0.91–1.09 up to 8,000 (uncommitted script, 2026-12-04; node CPU per
 * put fell by about a third), and a node serves for days. A row measured after a few hundred ops
 * measured the compiler; the rows measure what a node that has run a while does.
 */
export const WARMUP_OPS_DEFAULT = 4000

/** Top-level directories the warm-up writes under (see warmPath). */
const WARMUP_DIRS = 16

/**
 * Where warm-up op `i` writes: spread over WARMUP_DIRS top-level directories, so that it lands in
 * every metadata group (each directory's shard picks one) and warms every node as a group's leader
 * and as a follower, and so that no one group takes all of it (its snapshot, due every 10,000
 * entries, would then fall on whichever row came next).
 */
export function warmPath (i: number): string {
  return `/warm-${i % WARMUP_DIRS}/${i}`
}

/** The p50 of the first and of the last `window` latencies of a warm-up (what it changed, for the notes). */
export interface WarmUp {
  ops: number
  /** Latencies in each of the two windows. */
  window: number
  firstP50Ms: number
  lastP50Ms: number
}

/** Runs `op(i)` for i < count, one at a time, timing each; see WARMUP_OPS_DEFAULT. */
export async function warmUp (count: number, op: (i: number) => Promise<void>, window = 500): Promise<WarmUp> {
  const latencies: number[] = []
  for (let i = 0; i < count; i++) {
    const t = performance.now()
    await op(i)
    latencies.push(performance.now() - t)
  }
  const w = Math.min(window, latencies.length)
  return { ops: count, window: w, firstP50Ms: pct(latencies.slice(0, w), 0.5), lastP50Ms: pct(latencies.slice(latencies.length - w), 0.5) }
}

/** One line saying what a warm-up did. */
export function warmUpNote (what: string, w: WarmUp): string {
  return `warm-up: ${w.ops} ${what} before the latency rows; p50 of the first ${w.window} ${fmt(w.firstP50Ms)} ms, of the last ${w.window} ${fmt(w.lastP50Ms)} ms`
}

/** Two decimals below 10, one above; `-` for NaN. */
export function fmt (x: number): string { return Number.isNaN(x) ? '-' : x.toFixed(x < 10 ? 2 : 1) }

/** `x` as a JSON figure: null where it was not measured (undefined, NaN or infinite). */
export function jsonNumber (x: number | undefined): number | null {
  return x == null || !Number.isFinite(x) ? null : x
}

/**
 * Where a bench's human lines go: stdout, or stderr under `--json`, whose stdout carries exactly one
 * JSON document.
 */
export function humanLog (json: boolean): (line: string) => void {
  return json ? (line) => { console.error(line) } : (line) => { console.log(line) }
}

/** CPU seconds (user + system) a process has used so far, from /proc (Linux); undefined elsewhere. */
export async function cpuSeconds (pid: number | undefined): Promise<number | undefined> {
  if (pid == null) return undefined
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return (Number(fields[11]) + Number(fields[12])) / 100 // utime, stime in clock ticks (USER_HZ = 100)
  } catch {
    return undefined
  }
}

/** What a closedLoop run measured. */
export interface ClosedLoopRun {
  done: number
  failed: number
  /** Failures by error name. */
  errors: Map<string, number>
  /** Latency of each op that succeeded, ms. */
  lat: number[]
  elapsedS: number
  /** This (bench) process's CPU seconds over the run. */
  selfCpuS: number
  /** CPU seconds each of the watched processes spent over the run (undefined where unreadable). */
  cpuS: Array<number | undefined>
}

/**
 * `workers` closed-loop clients, each running `op(worker, i)` one after another until `seconds` have
 * passed; failures are counted by name, not thrown. The CPU of `pids` and of this process is read
 * before and after.
 */
export async function closedLoop (workers: number, seconds: number, op: (worker: number, i: number) => Promise<void>,
  pids: Array<number | undefined>): Promise<ClosedLoopRun> {
  const lat: number[] = []
  let done = 0
  let failed = 0
  const errors = new Map<string, number>()
  const cpu0 = await Promise.all(pids.map(async (pid) => await cpuSeconds(pid)))
  const self0 = process.cpuUsage()
  const t0 = performance.now()
  const end = t0 + seconds * 1000
  await Promise.all(Array.from({ length: workers }, async (_, j) => {
    for (let i = 0; performance.now() < end; i++) {
      const t = performance.now()
      try {
        await op(j, i)
        lat.push(performance.now() - t)
        done++
      } catch (err) {
        failed++
        const name = (err as Error).name
        errors.set(name, (errors.get(name) ?? 0) + 1)
      }
    }
  }))
  const elapsedS = (performance.now() - t0) / 1000
  const self = process.cpuUsage(self0)
  const cpu1 = await Promise.all(pids.map(async (pid) => await cpuSeconds(pid)))
  const cpuS = cpu0.map((a, k) => { const b = cpu1[k]; return a == null || b == null ? undefined : b - a })
  return { done, failed, errors, lat, elapsedS, selfCpuS: (self.user + self.system) / 1e6, cpuS }
}

/**
 * A closedLoop run's note line: `HEAD: N puts in S s[EXTRA][, F failed (…)]; CPU of one core: bench
 * B%, name C%, …` for the processes `names` (a `*` after those `marked`, the leader).
 */
export function closedLoopNote (head: string, run: ClosedLoopRun, names: string[], marked: boolean[], extra = ''): string {
  const { done, failed, errors, elapsedS } = run
  const share = (s: number | undefined): string => s === undefined ? '?' : `${(s / elapsedS * 100).toFixed(0)}%`
  const cpu = names.map((name, k) => `${name}${marked[k] ? '*' : ''} ${share(run.cpuS[k])}`).join(', ')
  return `${head}: ${done} puts in ${elapsedS.toFixed(2)} s${extra}${failed > 0 ? `, ${failed} failed (${[...errors].map(([k, v]) => `${k} ${v}`).join(', ')})` : ''}; ` +
    `CPU of one core: bench ${share(run.selfCpuS)}, ${cpu} (* leader)`
}

/** Rows of metric, median, p99 and target, with ok / MISSED where a target applies. */
export class ResultTable {
  readonly #rows: string[][] = [['metric', 'median', 'p99', 'target', '']]
  readonly #valueWidth: number

  constructor (valueWidth: number) {
    this.#valueWidth = valueWidth
  }

  row (metric: string, med: number, p99: number | string, target: string, ok?: boolean): void {
    this.#rows.push([metric, fmt(med), typeof p99 === 'number' ? fmt(p99) : p99, target, ok == null ? '' : ok ? 'ok' : 'MISSED'])
  }

  /** Writes the table line by line to `out` (stdout unless given). */
  print (out: (line: string) => void = (line) => { console.log(line) }): void {
    for (const r of this.#rows) out(r.map((c, i) => i === 0 ? c.padEnd(32) : c.padStart(i === 4 ? 7 : this.#valueWidth)).join(' '))
  }
}
