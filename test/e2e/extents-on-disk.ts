import { join } from 'node:path'
import { Level } from 'level'

/**
 * Direct access to a stopped node's LevelDB extent store (plugins/level-store), for tests that
 * inject what a disk does wrong. Layout (format version 3): in the store's own LevelDB, `h/<id>` is
 * the header, utf8 JSON {"seq":S,"size":N,"checksum":…[,"large":true]}; the bytes are under
 * `b/<S as 16 hex digits>` in that LevelDB, or in the one in its `large/` subdirectory when the
 * header says "large".
 */

/** Where the bytes of extent `id` are, read from its header: the LevelDB directory and the key. */
async function bytesLocation (dir: string, id: string): Promise<{ dbDir: string, key: string }> {
  const db = new Level<string, Uint8Array>(dir, { keyEncoding: 'utf8', valueEncoding: 'view' })
  await db.open()
  try {
    const raw = await db.get(`h/${id}`)
    if (raw == null) throw new Error(`extent ${id} is not in ${dir}`)
    const { seq, large } = JSON.parse(new TextDecoder().decode(raw)) as { seq?: unknown, large?: unknown }
    if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq <= 0) throw new Error(`extent ${id} in ${dir} has a header without a seq`)
    return { dbDir: large === true ? join(dir, 'large') : dir, key: `b/${seq.toString(16).padStart(16, '0')}` }
  } finally {
    await db.close()
  }
}

export async function corruptExtent (dir: string, id: string, offset = 1000): Promise<void> {
  const { dbDir, key } = await bytesLocation(dir, id)
  const db = new Level<string, Uint8Array>(dbDir, { keyEncoding: 'utf8', valueEncoding: 'view' })
  await db.open()
  try {
    const bytes = await db.get(key)
    if (bytes == null) throw new Error(`the bytes of extent ${id} are not in ${dbDir}`)
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
