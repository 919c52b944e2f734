import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { randomBytes } from 'node:crypto'
import { readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { corruptExtent } from './extents-on-disk.js'
import { Sandbox, type NodeHandle } from './harness.js'

/**
 * `dfs fs get --offset N --length N` through real processes: one node with 64 KiB extents, a file of
 * several extents, ranges inside one extent, across extent boundaries, at both ends, empty, clipped,
 * past the end, to stdout, stale, in a tenant's namespace; and the proof that a range reads only the
 * extents it needs: with an extent outside the range corrupt on disk (its only copy), the range read
 * succeeds while the whole read fails with CorruptExtent.
 */
const test = suite('e2e: range reads')

const EXTENT = 64 * 1024
const SIZE = 5 * EXTENT + 1000
let sb: Sandbox
let node: NodeHandle
let file: Buffer

test.before(async () => {
  sb = await Sandbox.create()
  file = randomBytes(SIZE)
  await writeFile(join(sb.dir, 'f.bin'), file)
  node = await sb.startNode({ args: ['--extent-size', String(EXTENT)] })
  const put = await sb.run(['fs', 'put', join(sb.dir, 'f.bin'), '/r/f.bin', '--json', '--node', node.addr])
  assert.is(put.code, 0, put.stderr)
  assert.equal(put.json, { path: '/r/f.bin', size: SIZE, extents: 6 })
})

test.after(async () => {
  await node?.stop()
  await sb.cleanup()
})

/** `fs get` of a range into a local file, checked against slicing the file; returns the JSON output. */
async function getRange (offset: number | undefined, length: number | undefined, extra: string[] = []): Promise<any> {
  const out = join(sb.dir, `out-${String(offset)}-${String(length)}.bin`)
  const flags = [...(offset !== undefined ? ['--offset', String(offset)] : []), ...(length !== undefined ? ['--length', String(length)] : [])]
  const r = await sb.run(['fs', 'get', '/r/f.bin', out, ...flags, ...extra, '--json', '--node', node.addr])
  const why = `${String(offset)}+${String(length)}: ${r.stdout} ${r.stderr}`
  assert.is(r.code, 0, why)
  const start = offset ?? 0
  const want = file.subarray(start, length === undefined ? SIZE : Math.min(SIZE, start + length))
  assert.equal(r.json, { path: '/r/f.bin', size: SIZE, offset: start, length: want.length, local: out, consistency: r.json.consistency }, why)
  assert.ok((await readFile(out)).equals(want), `bytes of ${why}`)
  return r.json
}

test('ranges inside one extent, across extent boundaries, on them, and at both ends read exactly those bytes', async () => {
  await getRange(70_000, 1000) // inside extent 1
  await getRange(EXTENT - 100, 200) // across one boundary
  await getRange(60_000, 3 * EXTENT) // across three, cut at both ends
  await getRange(EXTENT, EXTENT) // exactly extent 1
  await getRange(0, 10) // the start
  await getRange(SIZE - 10, undefined) // the end
  await getRange(3 * EXTENT, undefined) // the last two extents, the last one short
  await getRange(undefined, 5) // only --length
  await getRange(undefined, undefined) // the whole file, as without flags
  const whole = await sb.run(['fs', 'get', '/r/f.bin', join(sb.dir, 'whole.bin'), '--json', '--node', node.addr])
  assert.equal([whole.json.offset, whole.json.length, whole.json.size], [0, SIZE, SIZE])
})

test('a range past the end is clipped; one at the end or of length 0 is empty; one past the end is InvalidRange', async () => {
  assert.is((await getRange(SIZE - 10, 1000)).length, 10)
  assert.is((await getRange(SIZE, undefined)).length, 0)
  assert.is((await getRange(SIZE, 5)).length, 0)
  assert.is((await getRange(1234, 0)).length, 0)
  const out = join(sb.dir, 'past.bin')
  const past = await sb.run(['fs', 'get', '/r/f.bin', out, '--offset', String(SIZE + 1), '--json', '--node', node.addr])
  assert.not.equal(past.code, 0)
  assert.is(past.json?.error?.name, 'InvalidRange', past.stdout + past.stderr)
  assert.equal([past.json.error.details.offset, past.json.error.details.size], [SIZE + 1, SIZE])
  assert.ok(await stat(out).catch(() => undefined) == null, 'no output file from a refused range')
  const human = await sb.run(['fs', 'get', '/r/f.bin', out, '--offset', String(SIZE + 1), '--node', node.addr])
  assert.match(human.stderr, /^dfs: InvalidRange: /m)
})

test('a negative or non-integer offset or length is InvalidArgument', async () => {
  for (const flags of [['--offset=-1'], ['--length=-5'], ['--offset', '1.5'], ['--length', '1e3'], ['--offset', 'ten'], ['--length', '99999999999999999999']]) {
    const r = await sb.run(['fs', 'get', '/r/f.bin', join(sb.dir, 'bad.bin'), ...flags, '--json', '--node', node.addr])
    assert.not.equal(r.code, 0, flags.join(' '))
    assert.is(r.json?.error?.name, 'InvalidArgument', `${flags.join(' ')}: ${r.stdout} ${r.stderr}`)
  }
})

test('a range to stdout (-) writes exactly its bytes; a stale range read says so', async () => {
  const r = await sb.run(['fs', 'get', '/r/f.bin', '-', '--offset', String(2 * EXTENT - 7), '--length', '100000', '--node', node.addr])
  assert.is(r.code, 0, r.stderr)
  assert.ok(r.stdoutBytes.equals(file.subarray(2 * EXTENT - 7, 2 * EXTENT - 7 + 100_000)), 'stdout differs from the range')
  const empty = await sb.run(['fs', 'get', '/r/f.bin', '-', '--offset', String(SIZE), '--node', node.addr])
  assert.is(empty.code, 0, empty.stderr)
  assert.is(empty.stdoutBytes.length, 0)
  assert.is((await getRange(100, 70_000, ['--consistency', 'stale'])).consistency, 'stale')
})

test('a tenant user reads ranges of its files by its own paths', async () => {
  assert.is((await sb.run(['tenant', 'create', 'acme', '--json', '--node', node.addr])).code, 0)
  const key = await sb.identity('tuser')
  const id = (await sb.run(['identity', 'show', '--json'], { env: { DFS_IDENTITY: key } })).json.id
  const grant = await sb.run(['user', 'grant', id, 'user', '--tenant', 'acme', '--json', '--node', node.addr])
  assert.is(grant.code, 0, grant.stderr)
  const as = async (args: string[]): Promise<any> => await sb.run([...args, '--node', node.addr], { env: { DFS_IDENTITY: key } })
  assert.is((await as(['fs', 'put', join(sb.dir, 'f.bin'), '/t/f.bin', '--json'])).code, 0)
  const r = await as(['fs', 'get', '/t/f.bin', '-', '--offset', String(EXTENT + 1), '--length', '70000'])
  assert.is(r.code, 0, r.stderr)
  assert.ok(r.stdoutBytes.equals(file.subarray(EXTENT + 1, EXTENT + 1 + 70_000)))
  const j = await as(['fs', 'get', '/t/f.bin', join(sb.dir, 't.bin'), '--offset', '10', '--length', '10', '--json'])
  assert.equal([j.json.path, j.json.offset, j.json.length], ['/t/f.bin', 10, 10])
  const past = await as(['fs', 'get', '/t/f.bin', join(sb.dir, 't.bin'), '--offset', String(SIZE + 1), '--json'])
  assert.is(past.json?.error?.name, 'InvalidRange')
  assert.not.match(JSON.stringify(past.json), /acme/, 'the error names no tenant root')
  // the default namespace does not see it
  const other = await sb.run(['fs', 'get', '/t/f.bin', join(sb.dir, 'o.bin'), '--offset', '0', '--length', '1', '--json', '--node', node.addr])
  assert.is(other.json?.error?.name, 'NotFound')
})

test('only the extents a range needs are read: with an extent outside it corrupt, the range reads and the whole file fails', async () => {
  const st = await sb.run(['fs', 'stat', '/r/f.bin', '--json', '--node', node.addr])
  assert.is(st.json.extents.length, 6)
  const victim = st.json.extents[1].id
  const dataDir = node.dataDir
  assert.is(await node.stop(), 0, node.stderr())
  // the node's copy is the only copy
  await corruptExtent(join(dataDir, 'extents'), victim)
  node = await sb.startNode({ dataDir, args: ['--extent-size', String(EXTENT)] })
  // one byte of the corrupt extent: it is read and checked whole, so the range fails
  const needs = await sb.run(['fs', 'get', '/r/f.bin', join(sb.dir, 'needs.bin'), '--offset', String(2 * EXTENT - 1), '--length', '1', '--json', '--node', node.addr])
  assert.ok(['CorruptExtent', 'NotFound'].includes(needs.json?.error?.name), needs.stdout + needs.stderr)
  await getRange(0, EXTENT) // extent 0 whole
  await getRange(2 * EXTENT, 3 * EXTENT + 1000) // extents 2..5
  await getRange(EXTENT - 10, 10) // the end of extent 0, up to the corrupt one
  const out = join(sb.dir, 'corrupt.bin')
  const whole = await sb.run(['fs', 'get', '/r/f.bin', out, '--json', '--node', node.addr])
  assert.not.equal(whole.code, 0)
  // CorruptExtent naming it, or NotFound if the node has meanwhile dropped the copy it found corrupt
  assert.ok(['CorruptExtent', 'NotFound'].includes(whole.json?.error?.name), whole.stdout + whole.stderr)
  assert.match(JSON.stringify(whole.json.error), victim)
  assert.ok(await stat(out).catch(() => undefined) == null, 'no output file from a corrupt read')
})

test.run()
