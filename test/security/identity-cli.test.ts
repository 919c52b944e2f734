import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { stat } from 'node:fs/promises'
import { join } from 'node:path'
import { Sandbox, type NodeHandle } from '../e2e/harness.js'

/**
 * Through the real `dfs` binary (built: run `npx tsc -b` first): identity create and the refusal to
 * invent a named identity, directories created 0700, and the test fault hook's flag-and-variable rule
 * as `cluster status` reports it.
 */
const test = suite('security/identity and fault hook through the CLI (real processes)')

let sb: Sandbox
const nodes: NodeHandle[] = []

test.before(async () => { sb = await Sandbox.create() })
test.after(async () => {
  for (const n of nodes) await n.stop()
  await sb.cleanup()
})

const mode = async (path: string): Promise<number> => (await stat(path)).mode & 0o777
const exists = async (path: string): Promise<boolean> => await stat(path).then(() => true, () => false)

test('a DFS_IDENTITY that names a missing file is a ConfigError pointing at `dfs identity create`; no key is made', async () => {
  const env = { DFS_IDENTITY: join(sb.dir, 'keys', 'bob.key') }
  for (const args of [['identity', 'show', '--json'], ['fs', 'ls', '/', '--json', '--node', '127.0.0.1:1']]) {
    const r = await sb.run(args, { env })
    assert.is.not(r.code, 0, args.join(' '))
    assert.is(r.json?.error?.name, 'ConfigError', `${args.join(' ')}: ${r.stdout} ${r.stderr}`)
    assert.match(r.json.error.message, 'dfs identity create')
  }
  const human = await sb.run(['identity', 'show'], { env })
  assert.match(human.stderr, /ConfigError: .*dfs identity create/)
  assert.not.ok(await exists(env.DFS_IDENTITY))
})

test('identity create makes the named key (0600 in a 0700 directory), refuses to overwrite, and --force replaces it', async () => {
  const env = { DFS_IDENTITY: join(sb.dir, 'keys', 'bob.key') }
  const made = await sb.run(['identity', 'create', '--json'], { env })
  assert.is(made.code, 0, made.stderr)
  assert.match(made.json.id, /^12D3KooW/)
  assert.is(made.json.path, env.DFS_IDENTITY)
  assert.is(await mode(env.DFS_IDENTITY), 0o600)
  assert.is(await mode(join(sb.dir, 'keys')), 0o700)
  const shown = await sb.run(['identity', 'show', '--json'], { env })
  assert.is(shown.json.id, made.json.id)
  const again = await sb.run(['identity', 'create', '--json'], { env })
  assert.is.not(again.code, 0)
  assert.is(again.json.error.name, 'AlreadyExists')
  assert.is((await sb.run(['identity', 'show', '--json'], { env })).json.id, made.json.id, 'the refusal changed nothing')
  const forced = await sb.run(['identity', 'create', '--force', '--json'], { env })
  assert.is(forced.code, 0, forced.stderr)
  assert.is.not(forced.json.id, made.json.id)
})

test('without DFS_IDENTITY the key lives in the user config dir, whose new directories are 0700', async () => {
  const env = { DFS_IDENTITY: '' }
  const made = await sb.run(['identity', 'create', '--json'], { env })
  assert.is(made.code, 0, made.stderr)
  assert.ok(made.json.path.startsWith(join(sb.dir, 'home')), made.json.path)
  assert.is(await mode(made.json.path), 0o600)
  assert.is(await mode(join(made.json.path, '..')), 0o700)
})

test('a node creates its data dir 0700; cluster status says testFaults only with --test-faults and DFS_TEST_FAULTS=1', async () => {
  const plain = await sb.startNode({ dataDir: join(sb.dir, 'fresh', 'n1') })
  nodes.push(plain)
  assert.is(await mode(join(sb.dir, 'fresh', 'n1')), 0o700)
  assert.is(await mode(join(sb.dir, 'fresh')), 0o700)
  assert.is(await mode(join(plain.dataDir, 'node.key')), 0o600)
  const status = await sb.run(['cluster', 'status', '--json', '--node', plain.addr])
  assert.is(status.code, 0, status.stderr)
  assert.is(status.json.testFaults, false)

  const flagOnly = await sb.run(['node', 'start', '--data-dir', join(sb.dir, 'n-flag'), '--listen', '127.0.0.1:0', '--test-faults', '--json'], { env: { DFS_TEST_FAULTS: '' }, timeoutMs: 30_000 })
  assert.is.not(flagOnly.code, 0)
  assert.is(flagOnly.json?.error?.name, 'ConfigError', flagOnly.stdout + flagOnly.stderr)

  // the harness passes --test-faults when DFS_TEST_FAULTS=1 is in the environment: both keys
  const faulty = await sb.startNode({ env: { DFS_TEST_FAULTS: '1' } })
  nodes.push(faulty)
  const faultyStatus = await sb.run(['cluster', 'status', '--json', '--node', faulty.addr])
  assert.is(faultyStatus.json.testFaults, true)
  const human = await sb.run(['cluster', 'status', '--node', faulty.addr])
  assert.match(human.stdout, /test fault hook/)
})

test.run()
