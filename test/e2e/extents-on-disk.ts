import { Level } from 'level'
import { bytesKeyOf, largeDirOf } from '@dfs/level-store'

/**
 * Direct access to a stopped node's LevelDB extent store (plugins/level-store), for tests that
 * inject what a disk does wrong. The store says where an extent's bytes are (`bytesKeyOf`: in its
 * own LevelDB, or in the one in `largeDirOf` for extents of 1 MiB and more); the damage is done
 * with plain LevelDB calls, as a disk-level tool would.
 */

/** Opens the LevelDB in `dir`, runs `fn` on it, closes it. */
async function withDb<T> (dir: string, fn: (db: Level<string, Uint8Array>) => Promise<T>): Promise<T> {
  const db = new Level<string, Uint8Array>(dir, { keyEncoding: 'utf8', valueEncoding: 'view' })
  await db.open()
  try {
    return await fn(db)
  } finally {
    await db.close()
  }
}

export async function corruptExtent (dir: string, id: string, offset = 1000): Promise<void> {
  const where = await withDb(dir, async (db) => await bytesKeyOf(db, id))
  if (where === undefined) throw new Error(`extent ${id} is not in ${dir}, or its header names no bytes`)
  const dbDir = where.large ? largeDirOf(dir) : dir
  await withDb(dbDir, async (db) => {
    const bytes = await db.get(where.key)
    if (bytes == null) throw new Error(`the bytes of extent ${id} are not in ${dbDir}`)
    const copy = Uint8Array.from(bytes)
    copy[offset % copy.length] ^= 0x01
    await db.put(where.key, copy, { sync: true })
  })
}

/** Extents in the store: its headers (each extent has exactly one, written with its bytes). */
export async function countExtents (dir: string): Promise<number> {
  return await withDb(dir, async (db) => {
    let n = 0
    for await (const _ of db.keys({ gt: 'h/', lt: 'h0' })) n++
    return n
  })
}

/** The stored bytes of extent `id` in a stopped node's store, or undefined if it has none. */
export async function readExtent (dir: string, id: string): Promise<Uint8Array | undefined> {
  const where = await withDb(dir, async (db) => await bytesKeyOf(db, id))
  if (where === undefined) return undefined
  return await withDb(where.large ? largeDirOf(dir) : dir, async (db) => await db.get(where.key))
}
