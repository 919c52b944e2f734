import { Level } from 'level'

/**
 * Direct access to a stopped node's LevelDB extent store (plugins/level-store), for tests that
 * inject what a disk does wrong. Key layout (format version 2): `h/<id>` header, utf8 JSON
 * {"seq":S,"size":N,"checksum":…}; the bytes under `b/<S as 16 hex digits>`.
 */

/** The key of the bytes of extent `id`, read from its header. */
async function bytesKey (db: Level<string, Uint8Array>, dir: string, id: string): Promise<string> {
  const raw = await db.get(`h/${id}`)
  if (raw == null) throw new Error(`extent ${id} is not in ${dir}`)
  const { seq } = JSON.parse(new TextDecoder().decode(raw)) as { seq?: unknown }
  if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq <= 0) throw new Error(`extent ${id} in ${dir} has a header without a seq`)
  return `b/${seq.toString(16).padStart(16, '0')}`
}

export async function corruptExtent (dir: string, id: string, offset = 1000): Promise<void> {
  const db = new Level<string, Uint8Array>(dir, { keyEncoding: 'utf8', valueEncoding: 'view' })
  await db.open()
  try {
    const key = await bytesKey(db, dir, id)
    const bytes = await db.get(key)
    if (bytes == null) throw new Error(`the bytes of extent ${id} are not in ${dir}`)
    const copy = Uint8Array.from(bytes)
    copy[offset % copy.length] ^= 0x01
    await db.put(key, copy, { sync: true })
  } finally {
    await db.close()
  }
}

/** Extents in the store: its headers (each extent has exactly one, written with its bytes). */
export async function countExtents (dir: string): Promise<number> {
  const db = new Level<string, Uint8Array>(dir, { keyEncoding: 'utf8', valueEncoding: 'view' })
  await db.open()
  try {
    let n = 0
    for await (const _ of db.keys({ gt: 'h/', lt: 'h0' })) n++
    return n
  } finally {
    await db.close()
  }
}
