import { Level } from 'level'

/**
 * Direct access to a stopped node's LevelDB extent store (plugins/level-store), for tests that
 * inject what a disk does wrong. Key layout: `h/<id>` header, `b/<id>` bytes.
 */

export async function corruptExtent (dir: string, id: string, offset = 1000): Promise<void> {
  const db = new Level<string, Uint8Array>(dir, { keyEncoding: 'utf8', valueEncoding: 'view' })
  await db.open()
  try {
    const bytes = await db.get(`b/${id}`)
    if (bytes == null) throw new Error(`extent ${id} is not in ${dir}`)
    const copy = Uint8Array.from(bytes)
    copy[offset % copy.length] ^= 0x01
    await db.put(`b/${id}`, copy, { sync: true })
  } finally {
    await db.close()
  }
}

export async function countExtents (dir: string): Promise<number> {
  const db = new Level<string, Uint8Array>(dir, { keyEncoding: 'utf8', valueEncoding: 'view' })
  await db.open()
  try {
    let n = 0
    for await (const _ of db.keys({ gte: 'b/', lt: 'b0' })) n++
    return n
  } finally {
    await db.close()
  }
}
