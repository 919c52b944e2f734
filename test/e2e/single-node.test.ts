import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { randomBytes } from 'node:crypto'
import { readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { lpStream } from '@libp2p/utils'
import { multiaddr } from '@multiformats/multiaddr'
import { createHost } from '../../src/net/host.js'
import { readKeyFile } from '../../src/net/keys.js'
import { FRAME_BYTES_MAX, RPC_PROTOCOL } from '../../src/net/constants.js'
import { FramedStream, FrameKind } from '../../src/net/rpc/frames.js'
import { corruptExtent, countExtents } from './extents-on-disk.js'
import { Sandbox, type NodeHandle } from './harness.js'

const test = suite('e2e: one node through the CLI')

const MiB = 1024 * 1024
let sb: Sandbox
let node: NodeHandle
let big: Buffer
let bigPath: string

test.before(async () => {
  sb = await Sandbox.create()
  big = randomBytes(20 * MiB)
  bigPath = join(sb.dir, 'big.bin')
  await writeFile(bigPath, big)
})

test.after(async () => {
  await node?.stop()
  await sb.cleanup()
})

test('identity show prints the CLI user PeerId, creating a 0600 key on first use', async () => {
  const r = await sb.run(['identity', 'show', '--json'])
  assert.is(r.code, 0, r.stderr)
  assert.match(r.json.id, /^12D3KooW/)
  const again = await sb.run(['identity', 'show', '--json'])
  assert.is(again.json.id, r.json.id)
  assert.is((await stat(sb.env.DFS_IDENTITY as string)).mode & 0o777, 0o600)
})

test('node start serves and writes node.json with its PeerId and /p2p addresses; its key is 0600', async () => {
  node = await sb.startNode({ args: ['--name', 'alpha', '--region', 'eu-west'] })
  const info = JSON.parse(await readFile(join(node.dataDir, 'node.json'), 'utf8'))
  assert.is(info.id, node.id)
  assert.ok(info.addrs.length > 0)
  for (const a of info.addrs) assert.ok(a.endsWith(`/p2p/${node.id}`), a)
  assert.is((await stat(join(node.dataDir, 'node.key'))).mode & 0o777, 0o600)
})

test('a second process on the same data dir is refused with DataDirLocked', async () => {
  const r = await sb.run(['node', 'start', '--data-dir', node.dataDir, '--listen', '127.0.0.1:0'], { timeoutMs: 30_000 })
  assert.not.equal(r.code, 0)
  assert.match(r.stderr, /DataDirLocked/)
  // the first node still serves
  const s = await sb.run(['cluster', 'status', '--json', '--node', node.addr])
  assert.is(s.code, 0, s.stderr)
})

test('cluster status on one node', async () => {
  const r = await sb.run(['cluster', 'status', '--json', '--node', node.addr])
  assert.is(r.code, 0, r.stderr)
  assert.match(r.json.clusterId, /^[0-9a-f-]{36}$/)
  assert.is(r.json.leader, node.id)
  assert.type(r.json.term, 'number')
  assert.equal(r.json.nodes, { total: 1, healthy: 1, suspected: 0, failed: 0 })
  const nodes = await sb.run(['cluster', 'nodes', '--json', '--node', node.addr])
  assert.is(nodes.code, 0, nodes.stderr)
  const [only] = nodes.json.nodes
  assert.type(only.usedBytes, 'number')
  assert.ok(only.capacityBytes > 0, 'a node knows its own room')
  assert.equal(nodes.json, { nodes: [{ id: node.id, name: 'alpha', addrs: node.addrs, region: 'eu-west', health: 'healthy', voter: true, draining: false, usedBytes: only.usedBytes, capacityBytes: only.capacityBytes }] })
})

test('cluster token create gives a join token to an Admin only; a bad ttl changes nothing', async () => {
  const r = await sb.run(['cluster', 'token', 'create', '--ttl', '2h', '--json', '--node', node.addr])
  assert.is(r.code, 0, r.stderr)
  assert.match(r.json.token, /^dfs-join\.[0-9a-f]{16}\.[A-Za-z0-9_-]{43}\.[A-Za-z0-9_-]{22}$/)
  const expires = Date.parse(r.json.expiresAt)
  assert.ok(Math.abs(expires - Date.now() - 2 * 3600_000) < 60_000, r.json.expiresAt)
  const bad = await sb.run(['cluster', 'token', 'create', '--ttl', 'soon', '--json', '--node', node.addr])
  assert.not.equal(bad.code, 0)
  assert.is(bad.json.error.name, 'InvalidArgument')
  const stranger = await sb.run(['cluster', 'token', 'create', '--json', '--node', node.addr], { env: { DFS_IDENTITY: await sb.identity('stranger') } })
  assert.not.equal(stranger.code, 0)
  assert.is(stranger.json.error.name, 'PermissionDenied')
})

test('a 20 MiB random file is put and read back byte-identical; ls and stat describe it', async () => {
  const put = await sb.run(['fs', 'put', bigPath, '/data/big.bin', '--json', '--node', node.addr])
  assert.is(put.code, 0, put.stderr)
  assert.equal(put.json, { path: '/data/big.bin', size: 20 * MiB, extents: 5 })

  const out = join(sb.dir, 'big.out')
  const get = await sb.run(['fs', 'get', '/data/big.bin', out, '--json', '--node', node.addr])
  assert.is(get.code, 0, get.stderr)
  assert.ok(big.equals(await readFile(out)), 'bytes read back differ')

  const ls = await sb.run(['fs', 'ls', '/', '--json', '--node', node.addr])
  assert.is(ls.code, 0, ls.stderr)
  assert.equal(ls.json, { entries: [{ path: '/data', name: 'data', type: 'dir', size: 1 }], consistency: 'linearizable' })
  const lsData = await sb.run(['fs', 'ls', '/data', '--json', '--node', node.addr])
  assert.equal(lsData.json, { entries: [{ path: '/data/big.bin', name: 'big.bin', type: 'file', size: 20 * MiB }], consistency: 'linearizable' })

  const st = await sb.run(['fs', 'stat', '/data/big.bin', '--json', '--node', node.addr])
  assert.is(st.code, 0, st.stderr)
  assert.is(st.json.path, '/data/big.bin')
  assert.is(st.json.size, 20 * MiB)
  assert.is(st.json.extents.length, 5)
  for (const e of st.json.extents) {
    assert.match(e.id, /^[0-9a-f-]{36}$/)
    assert.is(e.size, 4 * MiB)
    assert.match(e.checksum, /^sha256:[0-9a-f]{64}$/)
    assert.equal(e.replicas, [node.id])
  }
})

test('get to stdout writes exactly the file bytes', async () => {
  const small = randomBytes(100_000)
  await writeFile(join(sb.dir, 'small.bin'), small)
  assert.is((await sb.run(['fs', 'put', join(sb.dir, 'small.bin'), '/small.bin', '--node', node.addr])).code, 0)
  const r = await sb.run(['fs', 'get', '/small.bin', '-', '--node', node.addr])
  assert.is(r.code, 0, r.stderr)
  assert.ok(r.stdoutBytes.equals(small), 'stdout differs from the file')
})

test('get of a missing file exits non-zero with NotFound, in both output modes', async () => {
  const r = await sb.run(['fs', 'get', '/no/such/file', join(sb.dir, 'x'), '--node', node.addr])
  assert.not.equal(r.code, 0)
  assert.match(r.stderr, /^dfs: NotFound: /m)
  assert.is(r.stderr.trim().split('\n').length, 1, 'one line of error')
  const j = await sb.run(['fs', 'get', '/no/such/file', join(sb.dir, 'x'), '--json', '--node', node.addr])
  assert.not.equal(j.code, 0)
  assert.is(j.json.error.name, 'NotFound')
  assert.not.ok(await stat(join(sb.dir, 'x')).catch(() => false))
})

test('an unknown identity is refused with PermissionDenied and changes nothing', async () => {
  const env = { DFS_IDENTITY: await sb.identity('stranger') }
  const ls = await sb.run(['fs', 'ls', '/', '--json', '--node', node.addr], { env })
  assert.not.equal(ls.code, 0)
  assert.is(ls.json.error.name, 'PermissionDenied')
  const put = await sb.run(['fs', 'put', bigPath, '/stranger.bin', '--node', node.addr], { env })
  assert.not.equal(put.code, 0)
  assert.match(put.stderr, /PermissionDenied/)
  const after = await sb.run(['fs', 'ls', '/', '--json', '--node', node.addr])
  assert.not.ok(after.json.entries.some((e: any) => e.name === 'stranger.bin'))
})

test('an unknown identity may only reach the RPC protocol: its Raft and DHT streams are reset', async () => {
  const stranger = await createHost({ privateKey: await generateKeyPair('Ed25519') })
  const user = await createHost({ privateKey: await readKeyFile(sb.env.DFS_IDENTITY as string) })
  try {
    const target = multiaddr(node.addr)
    const echoes = async (host: typeof stranger, protocol: string): Promise<boolean> => {
      try {
        const stream = await host.dialProtocol(target, protocol, { signal: AbortSignal.timeout(10_000) })
        // a served stream waits for our first frame; a refused one is reset (after the node has
        // looked again for STANDING_RECHECK_MS_DEFAULT whether the peer just became a member)
        await lpStream(stream).read({ signal: AbortSignal.timeout(5_000) })
        return true
      } catch (err: any) {
        return err?.name === 'TimeoutError' || err?.name === 'AbortError'
      }
    }
    assert.is(await echoes(stranger, '/dfs/raft/1.0.0'), false, 'raft refused to a stranger')
    assert.is(await echoes(stranger, '/dfs/kad/1.0.0'), false, 'kad refused to a stranger')
    assert.is(await echoes(user, '/dfs/raft/1.0.0'), true, 'the admin (a known identity) is not refused')
    // the RPC protocol still answers the stranger, with PermissionDenied
    const stream = await stranger.dialProtocol(target, RPC_PROTOCOL, { signal: AbortSignal.timeout(10_000) })
    const framed = new FramedStream(stream)
    await framed.write({ kind: FrameKind.Header, header: { method: 'fs.ls', params: { path: '/' }, timeoutMs: 5000 } })
    const reply = await framed.read({ signal: AbortSignal.timeout(10_000) })
    assert.is(reply?.kind, FrameKind.Error)
    assert.is((reply as any).error.name, 'PermissionDenied')
  } finally {
    await stranger.stop()
    await user.stop()
  }
})

test('garbage and oversized frames are refused with a typed error and the node keeps serving', async () => {
  const host = await createHost({ privateKey: await readKeyFile(sb.env.DFS_IDENTITY as string) })
  try {
    const target = multiaddr(node.addr)
    const lp = lpStream(await host.dialProtocol(target, RPC_PROTOCOL))
    await lp.write(new Uint8Array([FrameKind.Header, 0xbf, 0xff, 0x13, 0x37]))
    const reply = await new FramedStream(lp.unwrap()).read()
    assert.is(reply?.kind, FrameKind.Error)
    assert.is((reply as any).error.name, 'MalformedFrame')

    const lp2 = lpStream(await host.dialProtocol(target, RPC_PROTOCOL), { maxDataLength: 8 * FRAME_BYTES_MAX })
    await lp2.write(new Uint8Array(FRAME_BYTES_MAX + 1))
    const reply2 = await new FramedStream(lp2.unwrap()).read()
    assert.is(reply2?.kind, FrameKind.Error)
    assert.is((reply2 as any).error.name, 'FrameTooLarge')
  } finally {
    await host.stop()
  }
  const r = await sb.run(['fs', 'stat', '/data/big.bin', '--json', '--node', node.addr])
  assert.is(r.code, 0, r.stderr)
})

test('an invalid path is InvalidArgument; a put onto a directory is IsADirectory', async () => {
  const bad = await sb.run(['fs', 'stat', '/a/../b', '--json', '--node', node.addr])
  assert.is(bad.json.error.name, 'InvalidArgument')
  const dir = await sb.run(['fs', 'put', join(sb.dir, 'small.bin'), '/data', '--json', '--node', node.addr])
  assert.is(dir.json.error.name, 'IsADirectory')
})

test('a put replaces a file atomically: concurrent readers see the old or the new version, never a mix', async () => {
  const a = Buffer.alloc(9 * MiB, 0xaa)
  const b = Buffer.alloc(9 * MiB, 0xbb)
  await writeFile(join(sb.dir, 'a.bin'), a)
  await writeFile(join(sb.dir, 'b.bin'), b)
  assert.is((await sb.run(['fs', 'put', join(sb.dir, 'a.bin'), '/swap.bin', '--node', node.addr])).code, 0)
  const writers = (async () => {
    for (let i = 0; i < 3; i++) {
      const r = await sb.run(['fs', 'put', join(sb.dir, i % 2 === 0 ? 'b.bin' : 'a.bin'), '/swap.bin', '--node', node.addr])
      assert.is(r.code, 0, r.stderr)
    }
  })()
  const readers = Array.from({ length: 3 }, async (_, k) => {
    for (let i = 0; i < 2; i++) {
      const out = join(sb.dir, `swap-${k}-${i}.out`)
      const r = await sb.run(['fs', 'get', '/swap.bin', out, '--node', node.addr])
      assert.is(r.code, 0, r.stderr)
      const got = await readFile(out)
      assert.ok(got.equals(a) || got.equals(b), 'a reader saw a mix of two versions')
    }
  })
  await Promise.all([writers, ...readers])
})

test('rm removes the file and frees its extents on disk', async () => {
  const before = await sb.run(['fs', 'stat', '/swap.bin', '--json', '--node', node.addr])
  assert.is(before.code, 0)
  const rm = await sb.run(['fs', 'rm', '/swap.bin', '--json', '--node', node.addr])
  assert.is(rm.code, 0, rm.stderr)
  const st = await sb.run(['fs', 'stat', '/swap.bin', '--json', '--node', node.addr])
  assert.is(st.json.error.name, 'NotFound')
  // on disk: only the extents of the files still present remain (big: 5, small: 1)
  assert.is(await node.stop(), 0, node.stderr())
  assert.is(await countExtents(join(node.dataDir, 'extents')), 6)
})

test('after a restart the node has the same PeerId and the file reads back identical', async () => {
  const dataDir = node.dataDir
  const id = node.id
  node = await sb.startNode({ dataDir })
  assert.is(node.id, id)
  const out = join(sb.dir, 'big.restart.out')
  const get = await sb.run(['fs', 'get', '/data/big.bin', out, '--node', node.addr])
  assert.is(get.code, 0, get.stderr)
  assert.ok(big.equals(await readFile(out)))
})

test('a flipped byte in a stored extent gives CorruptExtent, not wrong bytes', async () => {
  const dataDir = node.dataDir
  const st = await sb.run(['fs', 'stat', '/data/big.bin', '--json', '--node', node.addr])
  const victim = st.json.extents[2].id
  assert.is(await node.stop(), 0)
  await corruptExtent(join(dataDir, 'extents'), victim)
  node = await sb.startNode({ dataDir })
  const out = join(sb.dir, 'corrupt.out')
  const r = await sb.run(['fs', 'get', '/data/big.bin', out, '--json', '--node', node.addr])
  assert.not.equal(r.code, 0)
  assert.is(r.json?.error?.name, 'CorruptExtent', `stdout: ${r.stdout} stderr: ${r.stderr}`)
  assert.is(r.json.error.details.extentId, victim)
  assert.match(r.stderr, new RegExp(victim))
  assert.ok(await stat(out).catch(() => undefined) == null, 'no output file from a corrupt read')
})

test('a node that cannot be reached gives NodeUnreachable within the deadline', async () => {
  const started = Date.now()
  const r = await sb.run(['fs', 'ls', '/', '--json', '--node', '127.0.0.1:1', '--timeout', '3000'])
  assert.not.equal(r.code, 0)
  assert.is(r.json.error.name, 'NodeUnreachable')
  assert.ok(Date.now() - started < 15_000)
})

test('SIGINT stops the node cleanly and removes node.json', async () => {
  assert.is(await node.stop('SIGINT'), 0, node.stderr())
  assert.ok(await stat(join(node.dataDir, 'node.json')).catch(() => undefined) == null)
})

test.run()
