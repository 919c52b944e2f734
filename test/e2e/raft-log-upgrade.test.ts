import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { randomBytes } from 'node:crypto'
import { readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { RaftLogDb, levelLogStore, type BatchOp } from '../../plugins/raft-metadata/src/raft/index.js'
import { Sandbox, listenAddress } from './harness.js'

/**
 * A node whose Raft log is a LevelDB (every build before the write-ahead log) starts on it, moves it
 * into the write-ahead log, and serves everything it held; writes after the move survive restarts.
 * The old directory is made from a stopped node's log: its keys, written into a LevelDB in its place.
 */
let sb: Sandbox
test.before(async () => { sb = await Sandbox.create() })
test.after(async () => { await sb.cleanup() })

const ARGS = ['--metadata', 'raft']

test('a node started on a LevelDB Raft log moves it into its write-ahead log and loses nothing', async () => {
  let node = await sb.startNode({ args: ARGS })
  const files = new Map<string, Buffer>()
  for (let i = 0; i < 4; i++) {
    const bytes = randomBytes(1000 + i * 70_000)
    const local = join(sb.dir, `f${i}.bin`)
    await writeFile(local, bytes)
    const r = await sb.run(['fs', 'put', local, `/upgrade/f${i}.bin`, '--node', node.addr])
    assert.is(r.code, 0, r.stderr)
    files.set(`/upgrade/f${i}.bin`, bytes)
  }
  assert.is(await node.stop(), 0, node.stderr())

  // the log as an older build left it: the same keys in a LevelDB, no segment
  const dir = join(node.dataDir, 'metadata', 'raft-log')
  const wal = await RaftLogDb.open(dir)
  const ops: BatchOp[] = []
  for await (const [key, value] of wal.store.range('', '\uffff')) ops.push({ type: 'put', key, value })
  await wal.close()
  assert.ok(ops.some((op) => op.key.endsWith('m/hs')), 'the log holds hard states')
  for (const n of await readdir(dir)) await rm(join(dir, n))
  const level = await levelLogStore(dir)
  await level.batch(ops, { sync: true })
  await level.close()
  assert.ok((await readdir(dir)).includes('CURRENT'))

  node = await sb.startNode({ dataDir: node.dataDir, listen: listenAddress(node), args: ARGS })
  const names = await readdir(dir)
  assert.not.ok(names.includes('CURRENT'), `LevelDB's files are gone: ${names.join(' ')}`)
  assert.ok(names.some((n) => n.endsWith('.wal')), names.join(' '))
  for (const [path, bytes] of files) {
    const out = join(sb.dir, 'out.bin')
    const r = await sb.run(['fs', 'get', path, out, '--node', node.addr])
    assert.is(r.code, 0, `${path}: ${r.stderr}`)
    assert.ok(bytes.equals(await readFile(out)), path)
  }
  // a write after the move, then a restart
  await writeFile(join(sb.dir, 'late.bin'), 'after the move')
  const late = await sb.run(['fs', 'put', join(sb.dir, 'late.bin'), '/upgrade/late.bin', '--node', node.addr])
  assert.is(late.code, 0, late.stderr)
  assert.is(await node.stop('SIGKILL'), null)
  node = await sb.startNode({ dataDir: node.dataDir, listen: listenAddress(node), args: ARGS })
  const got = await sb.run(['fs', 'get', '/upgrade/late.bin', '-', '--node', node.addr])
  assert.is(got.code, 0, got.stderr)
  assert.is(got.stdout, 'after the move')
  const ls = await sb.run(['fs', 'ls', '/upgrade', '--json', '--node', node.addr])
  assert.is(ls.json.entries.length, 5, ls.stdout)
  assert.is(await node.stop(), 0, node.stderr())
})

test.run()
