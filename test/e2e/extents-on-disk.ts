import { readStoredBytes, withClosedDb, writeStoredBytes } from '@dfs/level-store'

/**
 * Direct access to a stopped node's LevelDB extent store (plugins/level-store), for tests that
 * inject what a disk does wrong. The store's own tools find an extent's bytes (in its LevelDB, or
 * in a file of its own for extents stored in 256 KiB or more) and rewrite them as a disk-level tool would.
 */

/** Flips one bit of the stored bytes of extent `id` in the stopped node's store in `dir`. */
export async function corruptExtent (dir: string, id: string, offset = 1000): Promise<void> {
  const bytes = await readStoredBytes(dir, id)
  if (bytes === undefined) throw new Error(`extent ${id} is not in ${dir}, or its bytes are missing`)
  const copy = Uint8Array.from(bytes)
  copy[offset % copy.length] ^= 0x01
  await writeStoredBytes(dir, id, copy)
}

/** Extents in the store: its headers (each extent has exactly one, written with its bytes). */
export async function countExtents (dir: string): Promise<number> {
  return await withClosedDb(dir, async (db) => {
    let n = 0
    for await (const _ of db.keys({ gt: 'h/', lt: 'h0' })) n++
    return n
  })
}

/** The stored bytes of extent `id` in a stopped node's store, or undefined if it has none. */
export async function readExtent (dir: string, id: string): Promise<Uint8Array | undefined> {
  return await readStoredBytes(dir, id)
}
