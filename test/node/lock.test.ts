import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DataDirLock } from '../../src/node/lock.js'

const test = suite('node/lock')

test('a data dir is locked by one owner; a live owner is refused, a dead one taken over', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'dfs-lock-'))
  try {
    const lock = await DataDirLock.acquire(dir)
    assert.is((await readFile(join(dir, 'LOCK'), 'utf8')).trim(), String(process.pid))
    await writeFile(join(dir, 'LOCK'), '1\n') // pid 1 is alive
    try { await DataDirLock.acquire(dir); assert.unreachable() } catch (e: any) { assert.is(e.name, 'DataDirLocked'); assert.is(e.details.pid, 1) }
    await writeFile(join(dir, 'LOCK'), '999999999\n') // no such process
    const again = await DataDirLock.acquire(dir)
    await again.release()
    await lock.release()
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})

test.run()
