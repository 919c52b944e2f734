/**
 * One-time migration of a node's Raft logs from a LevelDB per group (`raft` for the system group,
 * `raft-g<g>` for data group g: the layout before the shared log) into the shared log
 * (`raft-log`, group g under `g<g>/`).
 *
 * Crash-safe: everything is copied into `raft-log.migrating` (the last batch fsync'd), which is then
 * renamed into place; only after that are the old directories removed. A crash before the rename
 * leaves the old logs as they were and the next start copies again from scratch; a crash after it
 * leaves old directories that the next start removes.
 */
import { rename, rm, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { Level } from 'level'
import { syncDir, type Logger } from '@dfs/api'
import { DATA_GROUPS_MAX, SYSTEM_GROUP } from '../shards/index.js'
import { LEGACY_SYSTEM_LOG_DIR, RAFT_LOG_DIR, groupPrefix, legacyDataLogDir } from './constants.js'

/** Keys copied per batch. */
const COPY_BATCH_KEYS = 1024

async function exists (path: string): Promise<boolean> {
  return await stat(path).then(() => true, () => false)
}

/** The legacy log directories present in `dir`, with their group numbers. */
async function legacyLogs (dir: string): Promise<Array<{ group: number, path: string }>> {
  const found: Array<{ group: number, path: string }> = []
  if (await exists(join(dir, LEGACY_SYSTEM_LOG_DIR))) found.push({ group: SYSTEM_GROUP, path: join(dir, LEGACY_SYSTEM_LOG_DIR) })
  for (let g = 1; g <= DATA_GROUPS_MAX; g++) {
    if (await exists(join(dir, legacyDataLogDir(g)))) found.push({ group: g, path: join(dir, legacyDataLogDir(g)) })
  }
  return found
}

/** Moves legacy per-group logs in `dir` into the shared log, if there are any. Returns how many groups moved. */
export async function migrateSeparateLogs (dir: string, log: Logger): Promise<number> {
  const legacy = await legacyLogs(dir)
  if (legacy.length === 0) return 0
  const target = join(dir, RAFT_LOG_DIR)
  if (await exists(target)) {
    // a migration that renamed its result into place and stopped before cleaning up
    for (const l of legacy) await rm(l.path, { recursive: true, force: true })
    return 0
  }
  const temp = `${target}.migrating`
  await rm(temp, { recursive: true, force: true })
  const db = new Level<string, Uint8Array>(temp, { keyEncoding: 'utf8', valueEncoding: 'view' })
  await db.open()
  try {
    for (const l of legacy) {
      const old = new Level<string, Uint8Array>(l.path, { keyEncoding: 'utf8', valueEncoding: 'view' })
      await old.open()
      try {
        let batch: Array<{ type: 'put', key: string, value: Uint8Array }> = []
        for await (const [key, value] of old.iterator()) {
          batch.push({ type: 'put', key: groupPrefix(l.group) + key, value })
          if (batch.length >= COPY_BATCH_KEYS) {
            await db.batch(batch)
            batch = []
          }
        }
        if (batch.length > 0) await db.batch(batch)
      } finally {
        await old.close()
      }
    }
    // LevelDB's log is sequential: one fsync'd write makes every earlier one durable too
    await db.put('migrated', new TextEncoder().encode(new Date().toISOString()), { sync: true })
  } finally {
    await db.close()
  }
  await rename(temp, target)
  await syncDir(dir)
  for (const l of legacy) await rm(l.path, { recursive: true, force: true })
  log('moved the Raft logs of groups %o into %s', legacy.map((l) => l.group), target)
  return legacy.length
}
