import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { mkdir, open, readFile, readdir, rename, rmdir, stat, truncate, unlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { DFS, Sandbox, sha256Hex, waitFor, type NodeHandle } from './harness.js'
import { loadFuse } from '../../src/mount/fuse-loader.js'

/**
 * `dfs mount` through the real kernel: a three-node cluster of real processes mounted on a temporary
 * directory by a spawned `dfs mount`. cp of a 50 MiB file in, read back with cmp and with
 * `dfs fs get`; ls -l, stat, mv (within a top-level directory, and across: EXDEV, so mv copies), rm,
 * mkdir -p, rmdir; dd at random offsets; a file put with `dfs fs put` visible within the TTL (also in a
 * directory the mount is creating files in); errno
 * of failures; a seeded fsx-like sequence compared with a local directory after each close; two
 * readers at once; a read-only mount refusing writes with EROFS; SIGTERM unmounting; a killed mount
 * recovered by the next; and the mount's node killed mid-read, the reads going on through another.
 *
 * Without FUSE (no /dev/fuse, no fusermount, no binding) the suite says why and skips; under CI a
 * missing fusermount or binding fails (.ci/run installs fuse3 and libfuse-dev), a machine without
 * /dev/fuse still skips (nothing to install: the container has no device).
 */
const test = suite('e2e: mount')
const FAST = ['--heartbeat-ms', '200', '--failure-timeout-ms', '1500', '--extent-size', String(1024 * 1024)]
const MiB = 1024 * 1024
const run = promisify(execFile)

const unavailable = await loadFuse().then(async (f) => { await f.cleanup(); return undefined }, (err: Error & { details?: { missing?: string } }) => err)
if (unavailable !== undefined) {
  if (process.env.CI === 'true' && unavailable.details?.missing !== 'device') throw unavailable
  console.log(`  e2e: mount skipped: ${unavailable.message}`)
}

let sb: Sandbox
const nodes: NodeHandle[] = []
/** Mount processes started (each stopped and its point unmounted in `after`, also on failure). */
const mounts: Array<{ proc: ChildProcess, dir: string }> = []
let mnt = ''
let big: Buffer

test.before(async () => { sb = await Sandbox.create() })
test.after(async () => {
  for (const m of mounts) {
    if (m.proc.exitCode == null && m.proc.signalCode == null) {
      m.proc.kill('SIGTERM')
      await new Promise((r) => { const t = setTimeout(r, 10_000); m.proc.once('close', () => { clearTimeout(t); r(undefined) }) })
    }
    if (m.proc.exitCode == null && m.proc.signalCode == null) m.proc.kill('SIGKILL')
    await run('fusermount3', ['-uz', m.dir]).catch(() => {})
  }
  for (const n of nodes) await n.stop()
  await sb?.cleanup()
})

async function ok (args: string[], via = 0): Promise<any> {
  const r = await sb.run([...args, '--json', '--node', nodes[via].addr])
  assert.is(r.code, 0, `${args.join(' ')}: ${r.stderr}`)
  return r.json
}

/** Starts `dfs mount DIR ARGS --json` and waits until it prints that it serves. */
async function startMount (dir: string, args: string[]): Promise<{ proc: ChildProcess, json: any, stderr: () => string, exited: Promise<number | null> }> {
  // a point holding a dead mount cannot be made (ENOTCONN): dfs mount recovers it
  await mkdir(dir, { recursive: true }).catch((err: NodeJS.ErrnoException) => { if (err.code !== 'ENOTCONN') throw err })
  // spools in the sandbox: a mount killed by the test leaves its spool directory there, not in /tmp
  const proc = spawn(process.execPath, [DFS, 'mount', dir, '--json', '--spool-dir', sb.dir, ...args], { cwd: sb.dir, env: sb.env, stdio: ['ignore', 'pipe', 'pipe'] })
  mounts.push({ proc, dir })
  let stdout = ''
  let stderr = ''
  proc.stdout.setEncoding('utf8').on('data', (d) => { stdout += d })
  proc.stderr.setEncoding('utf8').on('data', (d) => { stderr += d })
  const exited = new Promise<number | null>((resolveExit) => proc.on('close', (c) => { resolveExit(c) }))
  const json = await waitFor(async () => {
    if (proc.exitCode != null) throw new Error(`node exited: dfs mount exited with ${proc.exitCode}: ${stderr}`)
    try { return JSON.parse(stdout) } catch { return undefined }
  }, 30_000, `dfs mount on ${dir}`)
  return { proc, json, stderr: () => stderr, exited }
}

/** The errno code (ENOENT …) `p` fails with. */
async function code (p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p
  } catch (err) {
    return (err as NodeJS.ErrnoException).code
  }
  return undefined
}

async function mounted (dir: string): Promise<boolean> {
  return (await readFile('/proc/mounts', 'utf8')).split('\n').some((l) => l.split(' ')[1] === dir)
}

/** A seeded generator (mulberry32): a failing sequence replays with the same seed. */
function rng (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

if (unavailable === undefined) {
  test('a cluster of three voters, mounted by `dfs mount` naming two of them', async () => {
    nodes.push(await sb.startNode({ args: ['--name', 'n1', ...FAST] }))
    const t = await ok(['cluster', 'token', 'create', '--uses', '2'])
    for (const name of ['n2', 'n3']) nodes.push(await sb.startNode({ args: ['--name', name, '--peers', nodes[0].addr, '--join-token', t.token, ...FAST] }))
    await waitFor(async () => {
      const ns = (await sb.run(['cluster', 'nodes', '--json', '--node', nodes[0].addr])).json?.nodes ?? []
      return ns.length === 3 && ns.every((n: any) => n.voter && n.health === 'healthy') ? true : undefined
    }, 30_000, 'three healthy voters')
    mnt = join(sb.dir, 'mnt')
    const m = await startMount(mnt, ['--node', nodes[0].addr, '--node', nodes[1].addr])
    assert.is(m.json.mountpoint, mnt)
    assert.is(m.json.recovered, false)
    assert.is(m.json.nodes[0], nodes[0].addr)
    for (const n of nodes) assert.ok(m.json.nodes.includes(n.addr), 'every member is known for failover')
    assert.ok(await mounted(mnt))
    const fs = await stat(mnt)
    assert.ok(fs.isDirectory())
  })

  test('cp a 50 MiB file in; cmp it back through the mount and through dfs fs get on another node', async () => {
    big = randomBytes(50 * MiB)
    const local = join(sb.dir, 'big.bin')
    await writeFile(local, big)
    await mkdir(join(mnt, 'docs'))
    await run('cp', [local, join(mnt, 'docs', 'big.bin')])
    await run('cmp', [local, join(mnt, 'docs', 'big.bin')])
    const got = join(sb.dir, 'got.bin')
    await ok(['fs', 'get', '/docs/big.bin', got], 2)
    assert.is(sha256Hex(await readFile(got)), sha256Hex(big))
    assert.is((await ok(['fs', 'stat', '/docs/big.bin'], 1)).size, 50 * MiB)
  })

  test('ls -l and stat show sizes, types and the mounting user; touch -d keeps its time', async () => {
    await writeFile(join(mnt, 'docs', 'small.txt'), 'hello\n')
    const { stdout } = await run('ls', ['-l', join(mnt, 'docs')])
    assert.match(stdout, new RegExp(`-rw-r--r-- 1 \\S+ \\S+\\s+${50 * MiB} .* big\\.bin`))
    assert.match(stdout, /-rw-r--r-- 1 \S+ \S+\s+6 .* small\.txt/)
    const s = await run('stat', ['-c', '%s %F %u', join(mnt, 'docs', 'small.txt')])
    assert.is(s.stdout.trim(), `6 regular file ${process.getuid?.() ?? 0}`)
    assert.is((await run('stat', ['-c', '%F', join(mnt, 'docs')])).stdout.trim(), 'directory')
    const df = await run('df', ['-B1', mnt])
    assert.match(df.stdout, /dfs/)
    // touch -d keeps the time (utimens), seen through the mount and by dfs fs stat
    await run('touch', ['-d', '2020-01-02T03:04:05Z', join(mnt, 'docs', 'small.txt')])
    const when = Date.parse('2020-01-02T03:04:05Z')
    assert.is((await ok(['fs', 'stat', '/docs/small.txt'], 2)).mtimeMs, when)
    assert.is((await run('stat', ['-c', '%Y', join(mnt, 'docs', 'small.txt')])).stdout.trim(), String(when / 1000))
  })

  test('mv, rm, mkdir -p, rmdir; an empty directory made by mkdir stays until rmdir', async () => {
    const docs = join(mnt, 'docs')
    await run('mv', [join(docs, 'small.txt'), join(docs, 'moved.txt')])
    assert.is(await readFile(join(docs, 'moved.txt'), 'utf8'), 'hello\n')
    assert.is(await code(stat(join(docs, 'small.txt'))), 'ENOENT')
    await run('mkdir', ['-p', join(docs, 'a', 'b', 'c')])
    assert.equal((await ok(['fs', 'ls', '/docs/a/b'], 1)).entries.map((e: any) => [e.name, e.type]), [['c', 'dir']])
    assert.equal(await readdir(join(docs, 'a', 'b', 'c')), [])
    await run('mv', [join(docs, 'moved.txt'), join(docs, 'a', 'b', 'c', 'deep.txt')])
    assert.equal(await readdir(join(docs, 'a', 'b', 'c')), ['deep.txt'])
    assert.ok(await code(run('rmdir', [join(docs, 'a', 'b', 'c')])) !== undefined, 'rmdir of a non-empty directory fails')
    await run('rm', [join(docs, 'a', 'b', 'c', 'deep.txt')])
    assert.equal(await readdir(join(docs, 'a', 'b', 'c')), [], 'the explicit directory outlives its last file')
    await run('rmdir', [join(docs, 'a', 'b', 'c')])
    assert.equal(await readdir(join(docs, 'a', 'b')), [])
    await run('rm', ['-r', join(docs, 'a')])
    assert.is(await code(stat(join(docs, 'a'))), 'ENOENT')
    // across top-level directories rename(2) is EXDEV, and mv copies instead
    await writeFile(join(docs, 'x.txt'), 'across')
    assert.is(await code(rename(join(docs, 'x.txt'), join(mnt, 'x.txt'))), 'EXDEV')
    await mkdir(join(mnt, 'other'))
    await run('mv', [join(docs, 'x.txt'), join(mnt, 'other', 'x.txt')])
    assert.is(await readFile(join(mnt, 'other', 'x.txt'), 'utf8'), 'across')
    assert.is(await code(stat(join(docs, 'x.txt'))), 'ENOENT')
  })

  test('errors as errno: ENOENT, ENOTEMPTY, EISDIR, ENOTDIR, EEXIST', async () => {
    assert.is(await code(readFile(join(mnt, 'docs', 'none'))), 'ENOENT')
    await mkdir(join(mnt, 'docs', 'full'))
    await writeFile(join(mnt, 'docs', 'full', 'f'), 'x')
    assert.is(await code(unlink(join(mnt, 'docs', 'full'))), 'EISDIR')
    assert.is(await code(rmdir(join(mnt, 'docs', 'full'))), 'ENOTEMPTY')
    assert.is(await code(mkdir(join(mnt, 'docs', 'full', 'f', 'sub'))), 'ENOTDIR')
    assert.is(await code(mkdir(join(mnt, 'docs', 'full'))), 'EEXIST')
  })

  test('dd reads at random offsets match the bytes', async () => {
    const next = rng(17)
    const file = join(mnt, 'docs', 'big.bin')
    for (let i = 0; i < 20; i++) {
      const block = 4096
      const skip = Math.floor(next() * (big.byteLength / block - 4))
      const count = 1 + Math.floor(next() * 3)
      const { stdout } = await run('dd', [`if=${file}`, `bs=${block}`, `skip=${skip}`, `count=${count}`, 'status=none'], { encoding: 'buffer', maxBuffer: 64 * MiB })
      assert.ok(Buffer.from(stdout).equals(big.subarray(skip * block, (skip + count) * block)), `dd skip=${skip} count=${count}`)
    }
  })

  test('two readers at once read identical bytes', async () => {
    const file = join(mnt, 'docs', 'big.bin')
    const digest = async (): Promise<string> => {
      const h = createHash('sha256')
      for await (const chunk of createReadStream(file)) h.update(chunk as Buffer)
      return h.digest('hex')
    }
    const [a, b] = await Promise.all([digest(), digest()])
    assert.is(a, sha256Hex(big))
    assert.is(b, a)
  })

  test('a file put with dfs fs put shows through the mount within the TTL', async () => {
    const local = join(sb.dir, 'put.txt')
    await writeFile(local, 'from the CLI')
    // looked up (and missed) first, so the miss is cached
    assert.is(await code(stat(join(mnt, 'docs', 'put.txt'))), 'ENOENT')
    await ok(['fs', 'put', local, '/docs/put.txt'], 2)
    const seen = await waitFor(async () => await readFile(join(mnt, 'docs', 'put.txt'), 'utf8').catch(() => undefined), 3000, 'the put through the mount')
    assert.is(seen, 'from the CLI')
  })

  test('a burst of creates in one directory: each listed at once; a dfs fs put there still shows within the TTL', async () => {
    // the creates keep the mount's listing of /burst (and the kernel's misses) warm: an outside put
    // must still show once they expire, and the mount's own changes at once
    const dir = join(mnt, 'burst')
    await mkdir(dir)
    assert.is(await code(stat(join(dir, 'outside.txt'))), 'ENOENT')
    const names: string[] = []
    for (let i = 0; i < 30; i++) {
      names.push(`f${i}`)
      await writeFile(join(dir, `f${i}`), `file ${i}`)
      assert.is(await readFile(join(dir, `f${i}`), 'utf8'), `file ${i}`)
    }
    assert.equal((await readdir(dir)).sort(), [...names].sort())
    const local = join(sb.dir, 'outside.txt')
    await writeFile(local, 'put elsewhere')
    await ok(['fs', 'put', local, '/burst/outside.txt'], 1)
    await writeFile(join(dir, 'late'), 'a create after the put')
    const seen = await waitFor(async () => await readFile(join(dir, 'outside.txt'), 'utf8').catch(() => undefined), 3000, 'the put through the mount')
    assert.is(seen, 'put elsewhere')
    await unlink(join(dir, 'f0'))
    await rename(join(dir, 'f1'), join(dir, 'g1'))
    const listed = (await readdir(dir)).sort()
    assert.equal(listed, [...names.slice(2), 'g1', 'late', 'outside.txt'].sort())
    assert.is(await code(stat(join(dir, 'f0'))), 'ENOENT')
    assert.is(await readFile(join(dir, 'g1'), 'utf8'), 'file 1')
  })

  test('fsx-like: a seeded sequence of 2,000 writes at offsets, truncates, renames, unlinks and reads matches a local directory', async () => {
    const seed = Number(process.env.DFS_MOUNT_SEED ?? 4242)
    const next = rng(seed)
    const remoteDir = join(mnt, 'fsx')
    const localDir = join(sb.dir, 'fsx-local')
    await mkdir(remoteDir)
    await mkdir(localDir)
    const names = ['f0', 'f1', 'f2', 'f3']
    const OPS = Number(process.env.DFS_MOUNT_FSX_OPS ?? 2000)
    /** The mount's file `n` is byte for byte the local one (or both are missing). */
    const same = async (n: string, ctx: string): Promise<void> => {
      const local = await readFile(join(localDir, n)).catch(() => undefined)
      const remote = await readFile(join(remoteDir, n)).catch(() => undefined)
      assert.is(remote === undefined, local === undefined, `${ctx}: ${n} exists on one side only`)
      if (local !== undefined && remote !== undefined) assert.ok(remote.equals(local), `${ctx}: ${n} differs (${remote.byteLength} vs ${local.byteLength} bytes)`)
    }
    for (let i = 0; i < OPS; i++) {
      const name = names[Math.floor(next() * names.length)]
      const r = next()
      const what = r < 0.45 ? 'write' : r < 0.6 ? 'truncate' : r < 0.7 ? 'rename' : r < 0.78 ? 'unlink' : 'read'
      const ctx = `seed ${seed} op ${i} ${what} ${name}`
      const existsLocal = await stat(join(localDir, name)).then(() => true, () => false)
      const touched = [name]
      if (what === 'write') {
        const offset = Math.floor(next() * 300_000)
        const bytes = randomBytes(1 + Math.floor(next() * 70_000))
        for (const dir of [localDir, remoteDir]) {
          const fh = await open(join(dir, name), existsLocal ? 'r+' : 'w+')
          await fh.write(bytes, 0, bytes.byteLength, offset)
          await fh.close()
        }
      } else if (what === 'truncate' && existsLocal) {
        const size = Math.floor(next() * 400_000)
        for (const dir of [localDir, remoteDir]) await truncate(join(dir, name), size)
      } else if (what === 'rename' && existsLocal) {
        const to = names[Math.floor(next() * names.length)]
        for (const dir of [localDir, remoteDir]) await rename(join(dir, name), join(dir, to))
        touched.push(to)
      } else if (what === 'unlink' && existsLocal) {
        for (const dir of [localDir, remoteDir]) await unlink(join(dir, name))
      } else if (what === 'read' && existsLocal) {
        const size = (await stat(join(localDir, name))).size
        const offset = Math.floor(next() * (size + 1))
        const length = Math.floor(next() * 100_000)
        const read = async (dir: string): Promise<Buffer> => {
          const fh = await open(join(dir, name), 'r')
          const buf = Buffer.alloc(length)
          const { bytesRead } = await fh.read(buf, 0, length, offset)
          await fh.close()
          return buf.subarray(0, bytesRead)
        }
        assert.ok((await read(remoteDir)).equals(await read(localDir)), ctx)
        touched.length = 0
      }
      // after each close: the files the operation touched, byte for byte; every 100 operations all of them and the names
      for (const n of touched) await same(n, ctx)
      if (i % 100 === 99 || i === OPS - 1) {
        assert.equal((await readdir(remoteDir)).sort(), (await readdir(localDir)).sort(), ctx)
        for (const n of names) await same(n, ctx)
      }
    }
  })

  test('a read-only mount reads and refuses every change with EROFS', async () => {
    const ro = join(sb.dir, 'ro')
    const m = await startMount(ro, ['--node', nodes[1].addr, '--read-only'])
    assert.is(m.json.readOnly, true)
    assert.is((await stat(join(ro, 'docs', 'big.bin'))).size, 50 * MiB)
    assert.is(await readFile(join(ro, 'docs', 'put.txt'), 'utf8'), 'from the CLI')
    assert.is(await code(writeFile(join(ro, 'docs', 'new.txt'), 'x')), 'EROFS')
    assert.is(await code(writeFile(join(ro, 'docs', 'put.txt'), 'x')), 'EROFS')
    assert.is(await code(unlink(join(ro, 'docs', 'put.txt'))), 'EROFS')
    assert.is(await code(mkdir(join(ro, 'docs', 'd'))), 'EROFS')
    assert.is(await code(rename(join(ro, 'docs', 'put.txt'), join(ro, 'docs', 'q.txt'))), 'EROFS')
    assert.is(await code(truncate(join(ro, 'docs', 'put.txt'), 0)), 'EROFS')
    m.proc.kill('SIGTERM')
    assert.is(await m.exited, 0, m.stderr())
    assert.is(await mounted(ro), false, 'SIGTERM unmounted it')
  })

  test('a mount killed with SIGKILL is left dead; the next dfs mount there recovers it', async () => {
    const dir = join(sb.dir, 'crash')
    const m = await startMount(dir, ['--node', nodes[2].addr])
    m.proc.kill('SIGKILL')
    await m.exited
    assert.is(await code(stat(dir)), 'ENOTCONN')
    const again = await startMount(dir, ['--node', nodes[2].addr])
    assert.is(again.json.recovered, true)
    assert.is(await readFile(join(dir, 'docs', 'put.txt'), 'utf8'), 'from the CLI')
    again.proc.kill('SIGINT')
    assert.is(await again.exited, 0, again.stderr())
    assert.is(await mounted(dir), false)
  })

  test('the mount\'s node is killed mid-read: the read completes (or EIO), and the next reads go through another node', async () => {
    const file = join(mnt, 'docs', 'big.bin')
    const fh = await open(file, 'r')
    const first = Buffer.alloc(8 * MiB)
    await fh.read(first, 0, first.byteLength, 0)
    assert.ok(first.equals(big.subarray(0, 8 * MiB)))
    await nodes[0].stop('SIGKILL')
    // the rest of this open file: every byte right, or an I/O error, never wrong bytes
    const rest = Buffer.alloc(big.byteLength - first.byteLength)
    try {
      let at = 0
      while (at < rest.byteLength) {
        const { bytesRead } = await fh.read(rest, at, Math.min(MiB, rest.byteLength - at), first.byteLength + at)
        if (bytesRead === 0) break
        at += bytesRead
      }
      assert.is(at, rest.byteLength)
      assert.ok(rest.equals(big.subarray(first.byteLength)), 'the in-flight read completed with the right bytes')
    } catch (err) {
      assert.is((err as NodeJS.ErrnoException).code, 'EIO', 'a read in flight may fail only with EIO')
    } finally {
      await fh.close()
    }
    await run('cmp', [join(sb.dir, 'big.bin'), file])
    await writeFile(join(mnt, 'docs', 'after.txt'), 'written after the failover')
    assert.is(await readFile(join(mnt, 'docs', 'after.txt'), 'utf8'), 'written after the failover')
  })
}

test.run()
