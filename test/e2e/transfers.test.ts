import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { randomBytes } from 'node:crypto'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { groupOfShard, shardOfPath } from '../../plugins/raft-metadata/src/shards/index.js'
import { readExtent } from './extents-on-disk.js'
import { Sandbox, listenAddress, sha256Hex, waitFor, type NodeHandle } from './harness.js'

/**
 * Renames across metadata groups (transfers) and shared-extent copies through a three-node cluster
 * of real processes (three data groups, the default; 64 KiB extents): `fs mv` of a file to a
 * top-level directory of another group keeps its extents (no byte moves) and leaves one name; `fs
 * cp` within a group shares the extents, which stay until the last file listing them goes, and
 * copies bytes across groups. The coordinator is killed (SIGKILL, at a test crash point) after it
 * staged a transfer and after the target accepted it: once it restarts, the file is at exactly one
 * name, the old one or the new one, and reads back identical.
 */
const test = suite('e2e: transfers and shared extents')
const EXTENT = 64 * 1024
/** Replicas delete the copies of a freed extent after this grace (given to the nodes: --release-grace-ms). */
const RELEASE_GRACE_MS = 2000
const FAST = ['--heartbeat-ms', '200', '--failure-timeout-ms', '1500', '--extent-size', String(EXTENT), '--release-grace-ms', String(RELEASE_GRACE_MS)]
const ENV = { DFS_TEST_FAULTS: '1' }
const GROUPS = 3

let sb: Sandbox
const nodes: NodeHandle[] = []
/** Extent ids no node may hold at the end (freed), and ids every node must hold (moved, not freed). */
const gone: string[] = []
const kept: string[] = []

/** Top-level names: two in group 1, one in group 2. */
function nameIn (group: number, skip = 0): string {
  for (let i = 0, found = 0; ; i++) {
    if (groupOfShard(shardOfPath(`/top${i}`), GROUPS) !== group) continue
    if (found++ === skip) return `top${i}`
  }
}
const A = nameIn(1)
const A2 = nameIn(1, 1)
const B = nameIn(2)

test.before(async () => { sb = await Sandbox.create() })
test.after(async () => {
  for (const n of nodes) await n.stop()
  await sb.cleanup()
})

async function dfs (args: string[], via = 0): Promise<{ code: number | null, json: any, stderr: string }> {
  return await sb.run([...args, '--json', '--node', nodes[via].addr])
}

async function ok (args: string[], via = 0): Promise<any> {
  const r = await dfs(args, via)
  assert.is(r.code, 0, `${args.join(' ')}: ${r.stderr}`)
  return r.json
}

async function errorName (args: string[], via = 0): Promise<string> {
  const r = await dfs(args, via)
  assert.is.not(r.code, 0, `${args.join(' ')} should fail`)
  return r.json?.error?.name
}

/** A put acknowledged once every copy is durable (`--sync all`): a node killed right after still holds its copy. */
async function putNew (remote: string, size: number): Promise<Buffer> {
  const bytes = randomBytes(size)
  const local = join(sb.dir, `in-${randomBytes(4).toString('hex')}`)
  await writeFile(local, bytes)
  await ok(['fs', 'put', local, remote, '--sync', 'all'])
  return bytes
}

async function get (remote: string, via: number): Promise<Buffer> {
  const local = join(sb.dir, `out-${randomBytes(4).toString('hex')}`)
  await ok(['fs', 'get', remote, local], via)
  return await readFile(local)
}

const extentIds = async (path: string, via = 0): Promise<string[]> => (await ok(['fs', 'stat', path], via)).extents.map((e: any) => e.id)

test('a cluster of three voters, with the test fault hook', async () => {
  assert.is.not(groupOfShard(shardOfPath(`/${A}`), GROUPS), groupOfShard(shardOfPath(`/${B}`), GROUPS))
  nodes.push(await sb.startNode({ args: ['--name', 'n1', ...FAST], env: ENV }))
  const t = await ok(['cluster', 'token', 'create', '--uses', '2'])
  for (const name of ['n2', 'n3']) nodes.push(await sb.startNode({ args: ['--name', name, '--peers', nodes[0].addr, '--join-token', t.token, ...FAST], env: ENV }))
  await waitFor(async () => {
    const ns = (await dfs(['cluster', 'nodes'])).json?.nodes ?? []
    return ns.length === 3 && ns.every((n: any) => n.voter && n.health === 'healthy') ? true : undefined
  }, 30_000, 'three healthy voters')
})

test('mv to another group: the same extents at the new name only, read back identical through another node', async () => {
  const bytes = await putNew(`/${A}/f.bin`, 3 * EXTENT + 99)
  const before = await ok(['fs', 'stat', `/${A}/f.bin`])
  assert.equal(await ok(['fs', 'mv', `/${A}/f.bin`, `/${B}/g.bin`]), { from: `/${A}/f.bin`, to: `/${B}/g.bin` })
  const after = await ok(['fs', 'stat', `/${B}/g.bin`], 1)
  assert.equal(after.extents.map((e: any) => e.id), before.extents.map((e: any) => e.id), 'no byte moved')
  assert.equal([after.size, after.mtimeMs, after.version], [before.size, before.mtimeMs, before.version])
  assert.is(await errorName(['fs', 'stat', `/${A}/f.bin`], 2), 'NotFound')
  assert.is(sha256Hex(await get(`/${B}/g.bin`, 2)), sha256Hex(bytes))
  // and back, replacing a file there (whose extents are freed)
  await putNew(`/${A}/f.bin`, 10)
  assert.equal(await ok(['fs', 'mv', `/${B}/g.bin`, `/${A}/f.bin`], 1), { from: `/${B}/g.bin`, to: `/${A}/f.bin` })
  assert.ok((await get(`/${A}/f.bin`, 0)).equals(bytes))
  // one group, two top-level directories: one atomic rename, directories included
  await putNew(`/${A}/d/x`, 5)
  assert.equal(await ok(['fs', 'mv', `/${A}/d`, `/${A2}/d`]), { from: `/${A}/d`, to: `/${A2}/d` })
  assert.is((await ok(['fs', 'stat', `/${A2}/d/x`])).size, 5)
  assert.equal(await ok(['fs', 'mv', `/${A2}/d`, `/${A}/d`]), { from: `/${A2}/d`, to: `/${A}/d` })
  assert.equal(await ok(['fs', 'mv', `/${A}/d`, `/${A2}/d`]), { from: `/${A}/d`, to: `/${A2}/d` })
  // a directory moves between groups file by file, an empty (explicit) one included
  await ok(['fs', 'mkdir', `/${A2}/d/empty`])
  assert.equal(await ok(['fs', 'mv', `/${A2}/d`, `/${B}/d`]), { from: `/${A2}/d`, to: `/${B}/d` })
  assert.equal((await ok(['fs', 'ls', `/${B}/d`], 2)).entries.map((e: any) => [e.name, e.type]), [['empty', 'dir'], ['x', 'file']])
  assert.is(await errorName(['fs', 'stat', `/${A2}/d`], 1), 'NotFound')
  assert.is(await errorName(['fs', 'mv', `/${B}/d`, `/${A}/f.bin`]), 'NotADirectory')
  // --no-clobber refuses; nothing changed
  await putNew(`/${B}/taken`, 7)
  assert.is(await errorName(['fs', 'mv', `/${A}/f.bin`, `/${B}/taken`, '--no-clobber']), 'AlreadyExists')
  assert.ok((await get(`/${A}/f.bin`, 1)).equals(bytes), 'the refused transfer left the file where it was')
  assert.is((await ok(['fs', 'stat', `/${B}/taken`])).size, 7)
  assert.ok((await get(`/${A}/f.bin`, 0)).equals(bytes), 'and writable again: the refusal thawed it')
  await putNew(`/${A}/f.bin`, 3 * EXTENT + 99)
})

/** Kills node 0 at `point` during `mv from to`, restarts it, and waits until the transfer is resolved. */
async function crashDuringMv (point: string, from: string, to: string): Promise<void> {
  const client = await sb.client(nodes[0])
  try {
    await client.call('test.crash', { point })
  } finally {
    await client.close()
  }
  const r = await dfs(['fs', 'mv', from, to])
  assert.is.not(r.code, 0, 'the coordinator died before it answered')
  assert.is(await nodes[0].stop(), null, 'killed by its crash point')
  nodes[0] = await sb.startNode({ dataDir: nodes[0].dataDir, listen: listenAddress(nodes[0]), args: ['--name', 'n1', ...FAST], env: ENV })
}

test('the coordinator killed after staging: once it restarts, the file is where it was (and writable)', async () => {
  const bytes = await putNew(`/${A}/staged.bin`, 2 * EXTENT + 1)
  const ids = await extentIds(`/${A}/staged.bin`)
  await crashDuringMv('transfer:staged', `/${A}/staged.bin`, `/${B}/staged.bin`)
  // while the transfer stands the file is frozen (a put over it is FailedPrecondition); aborted, it thaws
  const local = join(sb.dir, 'same-bytes')
  await writeFile(local, bytes)
  await waitFor(async () => (await dfs(['fs', 'put', local, `/${A}/staged.bin`], 1)).code === 0 ? true : undefined, 60_000, 'the staged transfer to be aborted')
  assert.is(await errorName(['fs', 'stat', `/${B}/staged.bin`], 2), 'NotFound')
  assert.ok((await get(`/${A}/staged.bin`, 0)).equals(bytes))
  assert.is((await extentIds(`/${A}/staged.bin`)).length, ids.length)
})

test('the coordinator killed after the target accepted: once it restarts, the file is at the new name only', async () => {
  const bytes = await putNew(`/${A}/accepted.bin`, 2 * EXTENT + 2)
  const ids = await extentIds(`/${A}/accepted.bin`)
  await crashDuringMv('transfer:accepted', `/${A}/accepted.bin`, `/${B}/accepted.bin`)
  await waitFor(async () => (await dfs(['fs', 'stat', `/${A}/accepted.bin`], 1)).json?.error?.name === 'NotFound' ? true : undefined,
    60_000, 'the accepted transfer to be finished')
  assert.equal(await extentIds(`/${B}/accepted.bin`, 2), ids)
  assert.ok((await get(`/${B}/accepted.bin`, 1)).equals(bytes))
  assert.ok((await get(`/${B}/accepted.bin`, 0)).equals(bytes))
  kept.push(...ids)
})

test('cp within a group shares extents until the last file goes; cp across groups copies bytes', async () => {
  const bytes = await putNew(`/${A}/src.bin`, 2 * EXTENT + 5)
  const ids = await extentIds(`/${A}/src.bin`)
  const shared = await ok(['fs', 'cp', `/${A}/src.bin`, `/${A2}/copy.bin`])
  assert.equal([shared.shared, shared.size], [true, 2 * EXTENT + 5])
  assert.equal(await extentIds(`/${A2}/copy.bin`, 1), ids, 'the copy lists the same extents')
  const across = await ok(['fs', 'cp', `/${A}/src.bin`, `/${B}/copy.bin`], 1)
  assert.is(across.shared, false)
  assert.ok((await get(`/${B}/copy.bin`, 2)).equals(bytes))
  assert.is((await extentIds(`/${B}/copy.bin`)).filter((id) => ids.includes(id)).length, 0, 'new extents in the other group')
  // the source goes, freeing nothing: the shared copy still reads through every node
  assert.equal((await ok(['fs', 'rm', `/${A}/src.bin`])).freed, 0)
  for (const via of [0, 1, 2]) assert.ok((await get(`/${A2}/copy.bin`, via)).equals(bytes))
  // the last reference goes: so do the bytes (checked on every node's disk at the end, after the
  // release grace: a release in flight lives in its node's memory, and a node killed meanwhile
  // leaves its copies to the periodic orphan sweep, hours later)
  assert.equal((await ok(['fs', 'rm', `/${A2}/copy.bin`])).freed, ids.length)
  gone.push(...ids)
})

test('on every node\'s disk: the moved extents are all there, the freed shared ones gone', async () => {
  await new Promise((resolve) => setTimeout(resolve, RELEASE_GRACE_MS + 2000))
  for (const n of nodes) await n.stop()
  for (const n of nodes) {
    const dir = join(n.dataDir, 'extents')
    for (const id of kept) assert.ok(await readExtent(dir, id) !== undefined, `${n.id} keeps moved extent ${id}`)
    for (const id of gone) assert.is(await readExtent(dir, id), undefined, `${n.id} freed shared extent ${id}`)
  }
})

test.run()
