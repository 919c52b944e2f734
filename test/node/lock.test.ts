import { spawn } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { DataDirLock, ownerOf } from '../../src/node/lock.js'

const test = suite('node/lock')

/** /proc is there (Linux): the tests of owner identity need it. */
const PROC = existsSync('/proc/self/stat')

async function refused (dir: string, pid: number): Promise<void> {
  try {
    await DataDirLock.acquire(dir)
    assert.unreachable('a live owner must be refused')
  } catch (e: any) {
    assert.is(e.name, 'DataDirLocked')
    assert.is(e.details.pid, pid)
  }
}

async function takenOver (dir: string): Promise<void> {
  const lock = await DataDirLock.acquire(dir)
  assert.is((await readFile(join(dir, 'LOCK'), 'utf8')).trim(), ownerOf(process.pid))
  await lock.release()
}

test('a data dir is locked by one owner; a live owner is refused, a dead one taken over', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'dfs-lock-'))
  try {
    const lock = await DataDirLock.acquire(dir)
    const owner = (await readFile(join(dir, 'LOCK'), 'utf8')).trim()
    assert.is(owner, ownerOf(process.pid))
    assert.is(owner.split(' ')[0], String(process.pid))
    if (PROC) assert.is(owner.split(' ').length, 3, 'pid, boot id, start time')
    await refused(dir, process.pid)
    await writeFile(join(dir, 'LOCK'), '1\n') // a bare pid (older builds): pid 1 is alive
    await refused(dir, 1)
    await writeFile(join(dir, 'LOCK'), '999999999\n') // no such process
    await takenOver(dir)
    await lock.release()
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})

test('a pid that now belongs to another process, or was written before a reboot, does not hold the lock', async () => {
  if (!PROC) return
  const dir = await mkdtemp(join(tmpdir(), 'dfs-lock-'))
  try {
    const [pid, boot, start] = ownerOf(1).split(' ')
    await writeFile(join(dir, 'LOCK'), `${pid} ${boot} ${start}\n`)
    await refused(dir, 1)
    await writeFile(join(dir, 'LOCK'), `1 ${boot} ${Number(start) + 12345}\n`) // pid 1 started at another time
    await takenOver(dir)
    await writeFile(join(dir, 'LOCK'), `1 00000000-0000-0000-0000-000000000000 ${start}\n`) // another boot
    await takenOver(dir)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})

test('a killed owner that is still a zombie (not reaped by its parent) does not hold the lock', async () => {
  if (!PROC) return
  const dir = await mkdtemp(join(tmpdir(), 'dfs-lock-'))
  // `sh` starts a short sleep in the background and becomes a long sleep that never reaps it
  const parent = spawn('sh', ['-c', 'sleep 0.1 & echo $!; exec sleep 30'], { stdio: ['ignore', 'pipe', 'ignore'] })
  try {
    const zombie = await new Promise<number>((resolve) => parent.stdout.once('data', (d: Buffer) => { resolve(Number(d.toString().trim())) }))
    const stateOf = (): string => { const s = readFileSync(`/proc/${zombie}/stat`, 'utf8'); return s.slice(s.lastIndexOf(')') + 2).split(' ')[0] }
    const until = Date.now() + 5000
    while (stateOf() !== 'Z') {
      assert.ok(Date.now() < until, 'the background sleep became a zombie')
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
    process.kill(zombie, 0) // what the old check asked: it succeeds on a zombie
    await writeFile(join(dir, 'LOCK'), `${zombie}\n`)
    await takenOver(dir)
  } finally {
    parent.kill('SIGKILL')
    await rm(dir, { recursive: true, force: true })
  }
})

test.run()
