import { spawn } from 'node:child_process'
import { dirname, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { Lifecycle } from '../../src/node/lifecycle.js'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..')
/** Handles a process has for its own stdio (pipes to the parent, or a terminal). */
const STDIO = new Set(['PipeWrap', 'TTYWrap'])
/** Time after stop within which the child must have exited (it reports what lives at LINGER_MS, 6 s). */
const EXIT_WITHIN_MS = 12_000
/** Whole run of a child: start, a put and a get, stop (a deadline against a hung start). */
const CHILD_DEADLINE_MS = 90_000

interface ChildRun { code: number | null, signal: string | null, lines: Array<Record<string, unknown>>, stderr: string, exitAfterStopMs: number | undefined }

/** Runs lifecycle-child.ts with `nodes` nodes and collects what it printed and how it ended. */
async function runChild (nodes: number): Promise<ChildRun> {
  const child = spawn(process.execPath, ['--import', './bin/polyfill.js', '--import', 'tsx', '--conditions=dfs-source', 'test/node/lifecycle-child.ts', String(nodes)],
    { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, DEBUG: '' } })
  let out = ''
  let stderr = ''
  let stoppedAt: number | undefined
  child.stdout.on('data', (chunk: Buffer) => {
    out += chunk.toString()
    if (stoppedAt === undefined && out.includes('"stopped"')) stoppedAt = Date.now()
  })
  child.stderr.on('data', (chunk: Buffer) => { stderr = (stderr + chunk.toString()).slice(-20_000) })
  const kill = setTimeout(() => { child.kill('SIGKILL') }, CHILD_DEADLINE_MS)
  const stopKill = setInterval(() => {
    if (stoppedAt !== undefined && Date.now() - stoppedAt > EXIT_WITHIN_MS) child.kill('SIGKILL')
  }, 100)
  const [code, signal] = await new Promise<[number | null, string | null]>((resolveExit) => {
    child.on('exit', (c, s) => { resolveExit([c, s]) })
  })
  clearTimeout(kill)
  clearInterval(stopKill)
  const lines = out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>)
  return { code, signal, lines, stderr, exitAfterStopMs: stoppedAt === undefined ? undefined : Date.now() - stoppedAt }
}

function checkExitsByItself (run: ChildRun, nodes: number): void {
  const why = `child: code ${run.code} signal ${run.signal}\nstdout: ${JSON.stringify(run.lines)}\nstderr tail:\n${run.stderr.slice(-4000)}`
  assert.equal(run.lines.find((l) => 'roundTrip' in l), { roundTrip: true, nodes }, why)
  const stopped = run.lines.find((l) => 'stopped' in l)
  assert.ok(stopped !== undefined, `the child never finished stopping\n${why}`)
  // sockets, servers, LevelDB and file handles are all closed by stop(); only timers may still be armed
  const handles = (stopped.resources as string[]).filter((r) => !STDIO.has(r) && r !== 'Timeout')
  assert.equal(handles, [], `handles left after stop\n${why}`)
  assert.is(run.lines.find((l) => 'stillAliveMs' in l), undefined, `the process was still alive after stop\n${why}`)
  assert.is(run.signal, null, `the child had to be killed ${run.exitAfterStopMs ?? '?'} ms after stop\n${why}`)
  assert.is(run.code, 0, why)
}

test('parts stop in reverse order of start, once, also when one of them fails to stop', async () => {
  const life = new Lifecycle()
  const stopped: string[] = []
  life.started('lock', () => { stopped.push('lock') })
  life.started('host', async () => { stopped.push('host') })
  life.started('metadata', async () => { stopped.push('metadata'); throw new Error('disk gone') })
  life.started('rpc', () => { stopped.push('rpc') })
  assert.equal(life.names, ['lock', 'host', 'metadata', 'rpc'])
  await Promise.all([life.stop(), life.stop()])
  await life.stop()
  assert.equal(stopped, ['rpc', 'metadata', 'host', 'lock'])
})

test('a start that fails half-way stops exactly what had started', async () => {
  const life = new Lifecycle()
  const stopped: string[] = []
  const start = async (): Promise<void> => {
    life.started('lock', () => { stopped.push('lock') })
    life.started('store', () => { stopped.push('store') })
    throw new Error('cannot listen')
  }
  await start().catch(async () => { await life.stop() })
  assert.equal(stopped, ['store', 'lock'])
  assert.throws(() => { life.started('late', () => {}) }, /while the node is stopping/)
})

test('a node process exits by itself after NodeRuntime.stop(): nothing it started outlives it', async () => {
  checkExitsByItself(await runChild(1), 1)
})

test('two nodes (the second joined the first) in one process: after both stop, the process exits by itself', async () => {
  checkExitsByItself(await runChild(2), 2)
})

test.run()
