import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createKeyFile, loadIdentityKey, loadOrCreateKey, peerIdString, readKeyFile } from '../../src/net/keys.js'
import { testFaultsEnabled } from '../../src/node/faults.js'

/** Identity keys: directories 0700, keys 0600, a named identity never silently replaced; the fault hook's two keys. */
const test = suite('security/identity keys and the test fault switch')

let dir = ''
test.before(async () => { dir = await mkdtemp(join(tmpdir(), 'dfs-identity-')) })
test.after(async () => { await rm(dir, { recursive: true, force: true }) })

const nameOf = async (p: Promise<unknown>): Promise<string> => await p.then(() => 'ok', (err: Error) => err.name)

test('createKeyFile makes the directories 0700 and the key 0600; it refuses to overwrite unless forced', async () => {
  const path = join(dir, 'a', 'b', 'id.key')
  const key = await createKeyFile(path)
  assert.is((await stat(join(dir, 'a'))).mode & 0o777, 0o700)
  assert.is((await stat(join(dir, 'a', 'b'))).mode & 0o777, 0o700)
  assert.is((await stat(path)).mode & 0o777, 0o600)
  assert.is(peerIdString(await readKeyFile(path)), peerIdString(key))
  assert.is(await nameOf(createKeyFile(path)), 'AlreadyExists')
  assert.is(peerIdString(await readKeyFile(path)), peerIdString(key), 'the refused create changed nothing')
  const replaced = await createKeyFile(path, { force: true })
  assert.is.not(peerIdString(replaced), peerIdString(key))
  assert.is(peerIdString(await readKeyFile(path)), peerIdString(replaced))
  assert.is((await stat(path)).mode & 0o777, 0o600)
})

test('a node\'s data dir key (loadOrCreateKey) also gets a 0700 directory', async () => {
  const path = join(dir, 'data', 'node.key')
  await loadOrCreateKey(path)
  assert.is((await stat(join(dir, 'data'))).mode & 0o777, 0o700)
  assert.is((await stat(path)).mode & 0o777, 0o600)
})

test('loadIdentityKey: a named missing key is a ConfigError naming `dfs identity create`, and nothing is created', async () => {
  const path = join(dir, 'missing.key')
  try {
    await loadIdentityKey(path, { create: false })
    assert.unreachable()
  } catch (err: any) {
    assert.is(err.name, 'ConfigError')
    assert.match(err.message, 'dfs identity create')
  }
  assert.is(await nameOf(stat(path)), 'Error', 'no file appeared')
  const made = await loadIdentityKey(path, { create: true })
  assert.ok(made.created)
  assert.is(peerIdString((await loadIdentityKey(path, { create: false })).key), peerIdString(made.key))
  const loose = join(dir, 'loose.key')
  await writeFile(loose, 'x', { mode: 0o644 })
  assert.is(await nameOf(loadIdentityKey(loose, { create: false })), 'ConfigError', 'a key others can read is refused')
})

test('the test fault hook needs both the flag and DFS_TEST_FAULTS=1; the flag alone is a ConfigError', () => {
  const warnings: string[] = []
  const warn = (line: string): void => { warnings.push(line) }
  assert.is(testFaultsEnabled(false, {}, warn), false)
  assert.is(testFaultsEnabled(false, { DFS_TEST_FAULTS: '1' }, warn), false, 'the environment alone never turns it on')
  assert.is(warnings.length, 1, 'and says it was ignored')
  assert.is(testFaultsEnabled(true, { DFS_TEST_FAULTS: '1' }, warn), true)
  assert.throws(() => testFaultsEnabled(true, {}, warn), (err: Error) => err.name === 'ConfigError')
  assert.throws(() => testFaultsEnabled(true, { DFS_TEST_FAULTS: 'yes' }, warn), (err: Error) => err.name === 'ConfigError')
})

test.run()
