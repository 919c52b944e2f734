import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { NotADirectoryError, NotFoundError, type DirEntry } from '@dfs/api'
import { LIST_DIR_PAGES_MAX, listObjects, type ListDir, type ListPageResult, type ListQuery } from '../../../src/gateway/s3/list.js'
import { UPLOADS_DIR, compareKeys } from '../../../src/gateway/s3/names.js'

const test = suite('gateway/s3/list')

/**
 * An in-memory directory tree behind a ListDir that pages like fs.ls: entries sorted by name in
 * UTF-16 order, `after` the last name of the previous page, `more` when entries follow.
 */
interface TreeFile { kind: 'file', size: number }
interface TreeDir { kind: 'dir', children: Map<string, TreeNode> }
type TreeNode = TreeFile | TreeDir

const BUCKET = 'bkt'

function newDir (): TreeDir {
  return { kind: 'dir', children: new Map() }
}

/** The ListDir of `root` (the namespace: its children are buckets), `pageSize` entries a page; counts its calls. */
function listDirOf (root: TreeDir, pageSize: number): { listDir: ListDir, calls: { n: number } } {
  const calls = { n: 0 }
  const listDir: ListDir = async (path, after) => {
    calls.n++
    let node: TreeNode = root
    for (const segment of path.split('/').slice(1)) {
      if (node.kind !== 'dir') throw new NotADirectoryError(`${path} is not a directory`)
      const next: TreeNode | undefined = node.children.get(segment)
      if (next === undefined) throw new NotFoundError(`${path} does not exist`)
      node = next
    }
    if (node.kind !== 'dir') throw new NotADirectoryError(`${path} is not a directory`)
    const dir: TreeDir = node
    // UTF-16 code unit order, as the metadata keeps names
    const names = [...dir.children.keys()].sort().filter((name) => after === undefined || name > after)
    const page = names.slice(0, pageSize)
    const entries = page.map((name): DirEntry => {
      const child = dir.children.get(name) as TreeNode
      return child.kind === 'file'
        ? { path: `${path}/${name}`, name, type: 'file', size: child.size, mtimeMs: 1, version: 1 }
        : { path: `${path}/${name}`, name, type: 'dir', size: child.children.size }
    })
    return { entries, more: names.length > page.length }
  }
  return { listDir, calls }
}

/** A small seeded generator (mulberry32): a failing seed replays the same tree and queries. */
function rng (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

// pieces whose orders differ between UTF-16 and UTF-8 and around '-' (0x2d) < '.' (0x2e) < '/' (0x2f)
const PIECES = ['a', 'b', 'a-b', 'a.b', 'a-', 'a.', '-', '.a', 'ab', 'a0', 'z', 'A', '0', 'a b', '~', 'é', '\uFF61', '\u{1F600}', '\u{10000}', '\uE000']

function randomName (r: () => number): string {
  const pick = (): string => PIECES[Math.floor(r() * PIECES.length)]
  const name = r() < 0.6 ? pick() : pick() + pick()
  return name === '.' || name === '..' ? 'dot' : name
}

function randomTree (r: () => number): TreeDir {
  const fill = (dir: TreeDir, depth: number): void => {
    const n = Math.floor(r() * (depth === 0 ? 9 : 6))
    for (let i = 0; i < n; i++) {
      const name = randomName(r)
      if (dir.children.has(name)) continue
      if (depth < 3 && r() < 0.4) {
        const sub = newDir()
        dir.children.set(name, sub)
        // some stay empty: explicit directories, the `name/` "folder" objects
        if (r() < 0.75) fill(sub, depth + 1)
      } else {
        dir.children.set(name, { kind: 'file', size: Math.floor(r() * 100) })
      }
    }
  }
  const bucket = newDir()
  fill(bucket, 0)
  // the multipart uploads' parts: never listed
  const uploads = newDir()
  const upload = newDir()
  upload.children.set('1', { kind: 'file', size: 5 })
  uploads.children.set('u1', upload)
  bucket.children.set(UPLOADS_DIR, uploads)
  const root = newDir()
  root.children.set(BUCKET, bucket)
  return root
}

interface ModelObject { key: string, type: 'file' | 'dir', size: number }

/** Every key of the bucket as S3 has them: files, and empty directories as `key/`; sorted by UTF-8 bytes. */
function modelKeys (root: TreeDir): ModelObject[] {
  const out: ModelObject[] = []
  const visit = (dir: TreeDir, dirKey: string): void => {
    for (const [name, node] of dir.children) {
      if (dirKey === '' && name === UPLOADS_DIR) continue
      if (node.kind === 'file') out.push({ key: dirKey + name, type: 'file', size: node.size })
      else if (node.children.size === 0) out.push({ key: `${dirKey}${name}/`, type: 'dir', size: 0 })
      else visit(node, `${dirKey}${name}/`)
    }
  }
  visit(root.children.get(BUCKET) as TreeDir, '')
  return out.sort((a, b) => compareKeys(a.key, b.key))
}

interface ModelItem { key: string, prefix: boolean, object?: ModelObject }

/** The whole listing after `after`, S3's way: prefix filter, delimiter grouping, keys and prefixes <= after skipped. */
function modelListing (keys: ModelObject[], prefix: string, delimiter: string, after: string): ModelItem[] {
  const out: ModelItem[] = []
  for (const o of keys) {
    if (!o.key.startsWith(prefix)) continue
    const at = delimiter === '' ? -1 : o.key.indexOf(delimiter, prefix.length)
    const item: ModelItem = at >= 0 ? { key: o.key.slice(0, at + delimiter.length), prefix: true } : { key: o.key, prefix: false, object: o }
    if (compareKeys(item.key, after) <= 0) continue
    const previous = out[out.length - 1]
    if (item.prefix && previous?.prefix === true && previous.key === item.key) continue
    out.push(item)
  }
  return out
}

function describe (seed: number, query: ListQuery): string {
  return `seed ${seed}, query ${JSON.stringify({ ...query, bucket: undefined })}`
}

/** Lists every page of `query` and checks each against the model; answers the pages read. */
async function checkAllPages (listDir: ListDir, keys: ModelObject[], query: ListQuery): Promise<number> {
  const full = modelListing(keys, query.prefix, query.delimiter, query.after)
  const seen: string[] = []
  let after = query.after
  let pages = 0
  while (true) {
    const page: ListPageResult = await listObjects(listDir, { ...query, after })
    pages++
    const expected = modelListing(keys, query.prefix, query.delimiter, after)
    const want = expected.slice(0, query.maxKeys)
    assert.equal(page.objects.map((o) => o.key), want.filter((i) => !i.prefix).map((i) => i.key), `objects after ${JSON.stringify(after)}`)
    assert.equal(page.prefixes, want.filter((i) => i.prefix).map((i) => i.key), `prefixes after ${JSON.stringify(after)}`)
    for (const o of page.objects) {
      const m = want.find((i) => i.key === o.key)?.object as ModelObject
      assert.is(o.entry.type, m.type, `type of ${o.key}`)
      assert.is(o.entry.size, m.size, `size of ${o.key}`)
    }
    assert.is(page.truncated, expected.length > query.maxKeys, `truncated after ${JSON.stringify(after)}`)
    assert.is(page.last, want[want.length - 1]?.key, `last after ${JSON.stringify(after)}`)
    // the page in listing order: objects and prefixes merged
    seen.push(...want.map((i) => i.key))
    if (!page.truncated) break
    assert.ok(page.last !== undefined, 'a truncated page names where the next starts')
    after = page.last
    assert.ok(pages <= full.length + 1, 'the listing makes progress')
  }
  assert.equal(seen, full.map((i) => i.key), 'the pages together are the whole listing')
  assert.is(new Set(seen).size, seen.length, 'no key or prefix twice')
  return pages
}

test('random trees: every page of every query is the model\'s, with continuation', async () => {
  // LIST_SEED=n replays one seed; LIST_SEEDS=n runs n seeds
  const count = Number(process.env.LIST_SEEDS ?? 60)
  const seeds = process.env.LIST_SEED !== undefined ? [Number(process.env.LIST_SEED)] : Array.from({ length: count }, (_, i) => 1000 + i)
  for (const seed of seeds) {
    const r = rng(seed)
    const root = randomTree(r)
    const keys = modelKeys(root)
    const pageSize = 1 + Math.floor(r() * 4)
    const { listDir } = listDirOf(root, pageSize)
    // prefixes: none, ones that end mid-name, at a '/', inside the uploads dir, and cut from real keys
    const prefixes = ['', 'a', 'a-', 'a/', 'a.', '\uFF61', `${UPLOADS_DIR}/`, UPLOADS_DIR, 'nothing']
    for (let i = 0; i < 4 && keys.length > 0; i++) {
      const k = keys[Math.floor(r() * keys.length)].key
      prefixes.push([...k].slice(0, 1 + Math.floor(r() * [...k].length)).join(''))
    }
    for (const prefix of prefixes) {
      // '/a' and 'a/' can match across a directory's '/'
      for (const delimiter of ['', '/', '-', '/a', 'a/', '\u{1F600}']) {
        const starts = ['']
        if (keys.length > 0) {
          const k = keys[Math.floor(r() * keys.length)].key
          starts.push(k, [...k].slice(0, 1 + Math.floor(r() * [...k].length)).join(''))
        }
        for (const after of starts) {
          for (const maxKeys of [1, 2, 3, 1000]) {
            const query: ListQuery = { bucket: BUCKET, prefix, delimiter, after, maxKeys }
            try {
              await checkAllPages(listDir, keys, query)
            } catch (err) {
              console.error(`list model mismatch: ${describe(seed, query)} (replay: LIST_SEED=${seed})`)
              throw err
            }
          }
        }
      }
    }
  }
})

test('hand-made orderings: a vs a-b vs a/b vs a0, U+FF61 vs U+1F600, empty directories as folder objects', async () => {
  const root = newDir()
  const bucket = newDir()
  root.children.set(BUCKET, bucket)
  const a = newDir()
  a.children.set('b', { kind: 'file', size: 1 })
  bucket.children.set('a', a)
  bucket.children.set('a-b', { kind: 'file', size: 2 })
  bucket.children.set('a0', { kind: 'file', size: 3 })
  bucket.children.set('\u{1F600}', { kind: 'file', size: 4 })
  bucket.children.set('\uFF61', { kind: 'file', size: 5 })
  bucket.children.set('empty', newDir())
  bucket.children.set(UPLOADS_DIR, newDir())
  const { listDir } = listDirOf(root, 2)
  const page = await listObjects(listDir, { bucket: BUCKET, prefix: '', delimiter: '', after: '', maxKeys: 1000 })
  assert.equal(page.objects.map((o) => o.key), ['a-b', 'a/b', 'a0', 'empty/', '\uFF61', '\u{1F600}'])
  assert.is(page.objects[3].entry.type, 'dir')
  assert.is(page.truncated, false)
  const grouped = await listObjects(listDir, { bucket: BUCKET, prefix: '', delimiter: '/', after: '', maxKeys: 1000 })
  assert.equal(grouped.objects.map((o) => o.key), ['a-b', 'a0', '\uFF61', '\u{1F600}'])
  assert.equal(grouped.prefixes, ['a/', 'empty/'])
  const inside = await listObjects(listDir, { bucket: BUCKET, prefix: 'empty/', delimiter: '/', after: '', maxKeys: 1000 })
  assert.equal(inside.objects.map((o) => o.key), ['empty/'])
  assert.equal(inside.prefixes, [])
})

test('maxKeys 0 answers an empty page; a missing bucket lists nothing', async () => {
  const root = randomTree(rng(7))
  const { listDir } = listDirOf(root, 3)
  const none = await listObjects(listDir, { bucket: BUCKET, prefix: '', delimiter: '', after: '', maxKeys: 0 })
  assert.equal(none, { objects: [], prefixes: [], truncated: false, last: undefined })
  const missing = await listObjects(listDir, { bucket: 'nope', prefix: '', delimiter: '/', after: '', maxKeys: 10 })
  assert.equal(missing, { objects: [], prefixes: [], truncated: false, last: undefined })
})

test('a listing past its budget of directory pages answers a short page and continues from it', async () => {
  // every key costs two directory reads: a page runs out of budget before it has maxKeys keys
  const root = newDir()
  const bucket = newDir()
  root.children.set(BUCKET, bucket)
  const n = 1_500
  for (let i = 0; i < n; i++) {
    const d = newDir()
    const e = newDir()
    e.children.set('f', { kind: 'file', size: 1 })
    d.children.set('e', e)
    bucket.children.set(`d${String(i).padStart(5, '0')}`, d)
  }
  const { listDir, calls } = listDirOf(root, 1000)
  const keys = modelKeys(root)
  const first = await listObjects(listDir, { bucket: BUCKET, prefix: '', delimiter: '', after: '', maxKeys: 1000 })
  assert.ok(first.truncated)
  assert.ok(first.objects.length > 0 && first.objects.length < 1000, `a short page (${first.objects.length} keys)`)
  assert.ok(calls.n <= LIST_DIR_PAGES_MAX + 1, `${calls.n} directory pages read`)
  const pages = await checkAllPagesLoose(listDir, keys, { bucket: BUCKET, prefix: '', delimiter: '', after: '', maxKeys: 1000 })
  assert.is(pages, 2)
})

test('a big directory inside one CommonPrefix (delimiter "-") is one prefix, not a walk past the budget', async () => {
  const root = newDir()
  const bucket = newDir()
  root.children.set(BUCKET, bucket)
  const big = newDir()
  for (let i = 0; i < LIST_DIR_PAGES_MAX + 100; i++) {
    const d = newDir()
    d.children.set('f', { kind: 'file', size: 1 })
    big.children.set(`d${i}`, d)
  }
  bucket.children.set('a-b', big)
  bucket.children.set('a-c', { kind: 'file', size: 1 })
  bucket.children.set('z', { kind: 'file', size: 1 })
  const { listDir } = listDirOf(root, 1000)
  const keys = modelKeys(root)
  const pages = await checkAllPagesLoose(listDir, keys, { bucket: BUCKET, prefix: '', delimiter: '-', after: '', maxKeys: 1000 })
  assert.is(pages, 1)
  const page = await listObjects(listDir, { bucket: BUCKET, prefix: '', delimiter: '-', after: '', maxKeys: 1000 })
  assert.equal(page.prefixes, ['a-'])
  assert.equal(page.objects.map((o) => o.key), ['z'])
  // after the prefix: the directory is not walked again
  const rest = await listObjects(listDir, { bucket: BUCKET, prefix: '', delimiter: '-', after: 'a-', maxKeys: 1000 })
  assert.equal(rest.objects.map((o) => o.key), ['z'])
})

/**
 * Like checkAllPages, for pages the budget may cut short: each page is a prefix of the model's
 * listing after its `after`, and the pages together are the whole listing.
 */
async function checkAllPagesLoose (listDir: ListDir, keys: ModelObject[], query: ListQuery): Promise<number> {
  const full = modelListing(keys, query.prefix, query.delimiter, query.after).map((i) => i.key)
  const seen: string[] = []
  let after = query.after
  let pages = 0
  while (true) {
    const page = await listObjects(listDir, { ...query, after })
    pages++
    const got = [...page.objects.map((o) => o.key), ...page.prefixes].sort(compareKeys)
    const expected = modelListing(keys, query.prefix, query.delimiter, after).map((i) => i.key)
    assert.equal(got, expected.slice(0, got.length))
    assert.ok(got.length <= query.maxKeys)
    seen.push(...got)
    if (!page.truncated) {
      assert.is(got.length, expected.length, 'an untruncated page is the rest of the listing')
      break
    }
    assert.ok(page.last !== undefined && got.length > 0, 'a truncated page has a key to continue after')
    after = page.last
    assert.ok(pages <= full.length + 1, 'the listing makes progress')
  }
  assert.equal(seen, full)
  return pages
}

test.run()
