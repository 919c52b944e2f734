import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { LocalMetadataService } from '@dfs/raft-metadata'
import { MemoryExtentStore } from '@dfs/api/testing'
import { FileService, LIST_PAGE_BYTES_MAX } from '../../src/node/files.js'
import { ExtentGc } from '../../src/node/extent-gc.js'
import type { DirEntry, MetadataView } from '@dfs/api'

/**
 * `fs ls` pages: a page reads only its own entries of the directory (O(page), not O(directory)), its
 * continuation (`after`) resumes exactly after the last name, and a page of long names is cut by
 * bytes so it fits an RPC frame, whatever the directory holds.
 */
const test = suite('node/list pages')
const NODE = '12D3KooWRyh2zNmr7R2ixgMm9AXDBYUYPzfntKCELAq8HDtpAVMX'
const logger: any = Object.assign(() => {}, { error: () => {}, trace: () => {}, enabled: false })

let dir: string
let metadata: LocalMetadataService
let files: FileService

test.before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dfs-ls-'))
  metadata = new LocalMetadataService({ dir, nodeId: NODE, logger })
  await metadata.start()
  const store = new MemoryExtentStore()
  await store.open()
  files = new FileService({ nodeId: NODE, store, metadata, gc: new ExtentGc(store) })
})
test.after(async () => {
  await metadata.stop()
  await rm(dir, { recursive: true, force: true })
})

async function * none (): AsyncGenerator<Uint8Array> {}

test('pages by `after` visit every name once, in order, and MetadataView.list reads only the page', async () => {
  const names = Array.from({ length: 2500 }, (_, i) => `f${String(i).padStart(5, '0')}`)
  for (let i = 0; i < names.length; i += 100) {
    await Promise.all(names.slice(i, i + 100).map(async (n) => await files.put(`/big/${n}`, none())))
  }
  await files.mkdir('/big/zdir')
  // count how many entries the view builds for one page: a page of 10 must not touch all 2,500
  const real = metadata.staleRead.bind(metadata)
  let built = 0
  const counting = <T>(fn: (view: MetadataView) => T): T => real((view) => fn({
    ...view,
    list: (d: string, page?: { after?: string, limit?: number }): DirEntry[] => {
      const out = view.list(d, page)
      built += out.length
      return out
    }
  }))
  metadata.staleRead = counting
  try {
    const first = await files.list('/big', { limit: 10 }, { consistency: 'stale' })
    assert.equal(first.entries.map((e) => e.name), names.slice(0, 10))
    assert.ok(first.more)
    assert.ok(built <= 11, `one page of 10 built ${built} entries`)
    built = 0
    const mid = await files.list('/big', { after: names[1999], limit: 10 }, { consistency: 'stale' })
    assert.equal(mid.entries.map((e) => e.name), names.slice(2000, 2010))
    assert.ok(built <= 11, `a page from the middle built ${built} entries`)
  } finally {
    metadata.staleRead = real
  }
  const seen: string[] = []
  let after: string | undefined
  for (let pages = 0; pages < 100; pages++) {
    const p = await files.list('/big', { ...(after !== undefined ? { after } : {}), limit: 333 })
    seen.push(...p.entries.map((e) => e.name))
    if (!p.more) break
    after = p.entries[p.entries.length - 1].name
  }
  assert.equal(seen, [...names, 'zdir'])
  // an `after` that is not a name in the directory resumes at the next name
  assert.equal((await files.list('/big', { after: 'f00009x', limit: 2 })).entries.map((e) => e.name), ['f00010', 'f00011'])
  assert.equal((await files.list('/big', { after: 'zzz' })).entries, [])
})

test('a page of long names is cut by bytes, with more, and the rest follows', async () => {
  const long = (i: number): string => `${String(i).padStart(4, '0')}${'x'.repeat(250)}`
  const deep = `/long/${'d'.repeat(250)}/${'e'.repeat(250)}`
  for (let i = 0; i < 1000; i += 100) {
    await Promise.all(Array.from({ length: 100 }, async (_, j) => await files.put(`${deep}/${long(i + j)}`, none())))
  }
  const first = await files.list(deep)
  assert.ok(first.more, 'cut short')
  assert.ok(first.entries.length < 1000 && first.entries.length > 10, `${first.entries.length} entries in the first page`)
  const bytes = first.entries.reduce((n, e) => n + Buffer.byteLength(e.path) + Buffer.byteLength(e.name), 0)
  assert.ok(bytes <= LIST_PAGE_BYTES_MAX, `${bytes} bytes of names`)
  const all = [...first.entries]
  let after = first.entries[first.entries.length - 1].name
  while (true) {
    const p = await files.list(deep, { after })
    all.push(...p.entries)
    if (!p.more) break
    after = p.entries[p.entries.length - 1].name
  }
  assert.equal(all.map((e) => e.name), Array.from({ length: 1000 }, (_, i) => long(i)))
})

test.run()
