import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { spawn, spawnSync } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { access, mkdir, readFile, writeFile } from 'node:fs/promises'
import { constants } from 'node:fs'
import { join } from 'node:path'
import { Sandbox, waitFor, type NodeHandle } from './harness.js'

/**
 * The S3 API through the command-line clients operators use: Debian's s3cmd (path-style, signed
 * payloads, multipart above 15 MiB) and rclone (UNSIGNED-PAYLOAD with Content-MD5, listings of nested
 * prefixes, `rclone check` comparing MD5 ETags, and `rclone mount` reading a file when FUSE is
 * there). `.ci/run` installs both; without them (a developer's machine) the suite says so and
 * skips, except under CI, where a missing client fails.
 */
const test = suite('e2e: s3 clients (s3cmd, rclone)')
const FAST = ['--heartbeat-ms', '200', '--failure-timeout-ms', '1500', '--s3-listen', '127.0.0.1:0']
const MiB = 1024 * 1024

const have = (cmd: string): boolean => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0
const missing = ['s3cmd', 'rclone'].filter((c) => !have(c))
if (missing.length > 0 && process.env.CI === 'true') throw new Error(`${missing.join(' and ')} missing: .ci/run installs them`)

let sb: Sandbox
let node: NodeHandle
let endpoint = ''
let key: { accessKeyId: string, secretAccessKey: string }

test.before(async () => { sb = await Sandbox.create() })
test.after(async () => {
  await node?.stop()
  await sb.cleanup()
})

interface Ran { code: number | null, stdout: string, stderr: string }

/** Runs a client to completion (60 s at most), without AWS_CA_BUNDLE (Debian's rclone refuses plain HTTP with it). */
async function run (cmd: string, args: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 60_000): Promise<Ran> {
  const e: NodeJS.ProcessEnv = { ...sb.env, ...env }
  delete e.AWS_CA_BUNDLE
  const child = spawn(cmd, args, { cwd: sb.dir, env: e, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (d) => { stdout += d })
  child.stderr.setEncoding('utf8').on('data', (d) => { stderr += d })
  const timer = setTimeout(() => { child.kill('SIGKILL') }, timeoutMs)
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve))
  clearTimeout(timer)
  return { code, stdout, stderr }
}

async function must (cmd: string, args: string[], env?: NodeJS.ProcessEnv): Promise<string> {
  const r = await run(cmd, args, env)
  assert.is(r.code, 0, `${cmd} ${args.join(' ')}:\n${r.stdout}\n${r.stderr}`)
  return r.stdout
}

const s3cmd = async (...args: string[]): Promise<string> => await must('s3cmd', ['-c', join(sb.dir, 's3cmd.cfg'), ...args])
const rcloneEnv = (): NodeJS.ProcessEnv => ({
  RCLONE_CONFIG_DFS_TYPE: 's3',
  RCLONE_CONFIG_DFS_PROVIDER: 'Other',
  RCLONE_CONFIG_DFS_ACCESS_KEY_ID: key.accessKeyId,
  RCLONE_CONFIG_DFS_SECRET_ACCESS_KEY: key.secretAccessKey,
  RCLONE_CONFIG_DFS_ENDPOINT: endpoint,
  RCLONE_CONFIG_DFS_REGION: 'us-east-1',
  RCLONE_CONFIG: join(sb.dir, 'rclone.conf')
})
const rclone = async (...args: string[]): Promise<string> => await must('rclone', args, rcloneEnv())

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex')

test('one node serving S3 and a key', async () => {
  if (missing.length > 0) {
    console.log(`  skipped: ${missing.join(', ')} not installed (apt-get install ${missing.join(' ')}; .ci/run installs them)`)
    return
  }
  node = await sb.startNode({ args: ['--name', 'n1', ...FAST] })
  const info = JSON.parse(await readFile(join(node.dataDir, 'node.json'), 'utf8'))
  endpoint = `http://${info.s3 as string}`
  const r = await sb.run(['s3', 'key', 'create', '--json', '--node', node.addr])
  assert.is(r.code, 0, r.stderr)
  key = r.json
  await writeFile(join(sb.dir, 's3cmd.cfg'), [
    '[default]',
    `access_key = ${key.accessKeyId}`,
    `secret_key = ${key.secretAccessKey}`,
    `host_base = ${info.s3 as string}`,
    `host_bucket = ${info.s3 as string}`,
    'use_https = False',
    'signature_v2 = False',
    'bucket_location = us-east-1',
    ''
  ].join('\n'), { mode: 0o600 })
  await writeFile(join(sb.dir, 'rclone.conf'), '', { mode: 0o600 })
})

test('s3cmd: mb, put, a 30 MiB multipart put, get, ls, del', async () => {
  if (missing.length > 0) return
  await s3cmd('mb', 's3://tools')
  const small = randomBytes(100_000)
  const big = randomBytes(30 * MiB + 1234)
  await writeFile(join(sb.dir, 'small.bin'), small)
  await writeFile(join(sb.dir, 'big.bin'), big)
  await s3cmd('put', join(sb.dir, 'small.bin'), 's3://tools/dir/small.bin')
  const out = await run('s3cmd', ['-c', join(sb.dir, 's3cmd.cfg'), '--progress', 'put', join(sb.dir, 'big.bin'), 's3://tools/big.bin'])
  assert.is(out.code, 0, out.stderr)
  assert.match(out.stdout + out.stderr, /part 3 of 3/, 'uploaded in parts of 15 MiB')
  await s3cmd('get', 's3://tools/dir/small.bin', join(sb.dir, 'small.out'))
  await s3cmd('get', 's3://tools/big.bin', join(sb.dir, 'big.out'))
  assert.is(sha(await readFile(join(sb.dir, 'small.out'))), sha(small))
  assert.is(sha(await readFile(join(sb.dir, 'big.out'))), sha(big))
  const ls = await s3cmd('ls', 's3://tools/')
  assert.match(ls, /DIR\s+s3:\/\/tools\/dir\//)
  assert.match(ls, /s3:\/\/tools\/big\.bin/)
  const la = await s3cmd('ls', '--recursive', 's3://tools/')
  assert.match(la, /s3:\/\/tools\/dir\/small\.bin/)
  await s3cmd('del', 's3://tools/big.bin')
  assert.not.match(await s3cmd('ls', '--recursive', 's3://tools/'), /big\.bin/)
})

test('rclone: copy, sync, check, ls of nested prefixes', async () => {
  if (missing.length > 0) return
  const src = join(sb.dir, 'tree')
  const files: Record<string, Buffer> = {
    'a.txt': randomBytes(10),
    'x/b.bin': randomBytes(200_000),
    'x/y/c.bin': randomBytes(3 * MiB),
    'x/y/z/d.txt': Buffer.from('deep')
  }
  for (const [p, b] of Object.entries(files)) {
    await mkdir(join(src, p, '..'), { recursive: true })
    await writeFile(join(src, p), b)
  }
  await rclone('mkdir', 'dfs:rclone')
  await rclone('copy', src, 'dfs:rclone/tree')
  const listed = (await rclone('lsf', '-R', '--files-only', 'dfs:rclone/tree')).trim().split('\n').sort()
  assert.equal(listed, Object.keys(files).sort())
  assert.equal((await rclone('lsf', 'dfs:rclone/tree/x')).trim().split('\n').sort(), ['b.bin', 'y/'])
  // check compares sizes and MD5s (the ETags) of every file
  await rclone('check', src, 'dfs:rclone/tree')
  // sync: a local delete and a change reach the bucket
  await writeFile(join(src, 'x/b.bin'), randomBytes(1000))
  await writeFile(join(src, 'new.txt'), 'new')
  const { rm } = await import('node:fs/promises')
  await rm(join(src, 'a.txt'))
  await rclone('sync', src, 'dfs:rclone/tree')
  await rclone('check', src, 'dfs:rclone/tree')
  const after = (await rclone('lsf', '-R', '--files-only', 'dfs:rclone/tree')).trim().split('\n').sort()
  assert.equal(after, ['new.txt', 'x/b.bin', 'x/y/c.bin', 'x/y/z/d.txt'])
  const cat = await rclone('cat', 'dfs:rclone/tree/x/y/z/d.txt')
  assert.is(cat, 'deep')
})

test('rclone mount reads a file through FUSE (when /dev/fuse is there)', async () => {
  if (missing.length > 0) return
  const fuse = await access('/dev/fuse', constants.R_OK | constants.W_OK).then(() => true, () => false)
  if (!fuse || !have('fusermount3')) {
    if (process.env.CI === 'true' && !fuse) console.log('  skipped: no /dev/fuse on this machine')
    else console.log('  skipped: FUSE is not available here')
    return
  }
  const mnt = join(sb.dir, 'mnt')
  await mkdir(mnt)
  const env = rcloneEnv()
  const e: NodeJS.ProcessEnv = { ...sb.env, ...env }
  delete e.AWS_CA_BUNDLE
  const child = spawn('rclone', ['mount', 'dfs:rclone', mnt, '--read-only', '--dir-cache-time', '1s'], { env: e, stdio: ['ignore', 'pipe', 'pipe'] })
  let stderr = ''
  child.stderr.setEncoding('utf8').on('data', (d) => { stderr += d })
  try {
    const bytes = await waitFor(async () => await readFile(join(mnt, 'tree', 'x', 'y', 'c.bin')).catch(() => undefined), 20_000, `rclone mount to serve (${stderr})`)
    const local = await readFile(join(sb.dir, 'tree', 'x', 'y', 'c.bin'))
    assert.is(sha(bytes), sha(local))
  } finally {
    spawnSync('fusermount3', ['-u', mnt])
    child.kill('SIGTERM')
    await new Promise((resolve) => { if (child.exitCode !== null) resolve(null); else child.on('close', resolve) })
  }
})

test.run()
