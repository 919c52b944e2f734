import { isError, type DirEntry } from '@dfs/api'
import { s3Error } from './errors.js'
import { UPLOADS_DIR, compareKeys } from './names.js'

/**
 * ListObjects over a directory tree. S3 keys are flat and ordered by their UTF-8 bytes; here they are
 * paths, so the walk orders each directory's entries by `name` for a file and `name/` for a directory
 * — every key under a directory starts with `name/`, so that order, depth first, is exactly S3's.
 * A directory whose key already holds the delimiter past the prefix (with `/`: every directory the
 * prefix ends before) is one CommonPrefix and is not entered; otherwise the walk enters it and the
 * prefixes are found in the keys.
 */

/** One page of a directory as the walk reads it (fs.ls). */
export type ListDir = (path: string, after: string | undefined) => Promise<{ entries: DirEntry[], more: boolean }>

export interface ListQuery {
  bucket: string
  prefix: string
  /** '' for none. */
  delimiter: string
  /** Keys (and CommonPrefixes) at or before this are skipped (StartAfter, a continuation, a marker). */
  after: string
  maxKeys: number
}

export interface ListedObject {
  key: string
  entry: DirEntry
}

export interface ListPageResult {
  objects: ListedObject[]
  prefixes: string[]
  truncated: boolean
  /** The last key or prefix of the page: where the next page starts after. */
  last: string | undefined
}

/** Directory pages one ListObjects request may read before it answers a shorter page (truncated). */
export const LIST_DIR_PAGES_MAX = 2_000
/** Entries of one directory the walk sorts at once: a bigger directory cannot be listed by S3 here. */
export const LIST_DIR_ENTRIES_MAX = 1_000_000

interface WalkItem { key: string, entry: DirEntry | undefined, prefix: boolean }

/** Lists one page of `query`. */
export async function listObjects (listDir: ListDir, query: ListQuery): Promise<ListPageResult> {
  const budget = { pages: 0 }
  const objects: ListedObject[] = []
  const prefixes: string[] = []
  let last: string | undefined
  let truncated = false
  const { prefix, delimiter, after } = query
  if (query.maxKeys === 0) return { objects, prefixes, truncated: false, last: undefined }

  /** The sorted entries of a directory, or undefined when it does not exist. */
  const entriesOf = async (path: string): Promise<Array<{ sortName: string, entry: DirEntry }> | undefined> => {
    const all: DirEntry[] = []
    let from: string | undefined
    while (true) {
      if (++budget.pages > LIST_DIR_PAGES_MAX) throw new BudgetSpent()
      let page
      try {
        page = await listDir(path, from)
      } catch (err) {
        if (isError(err, 'NotFound') || isError(err, 'NotADirectory')) return undefined
        throw err
      }
      all.push(...page.entries)
      if (all.length > LIST_DIR_ENTRIES_MAX) throw s3Error('InternalError', `directory ${path} has more than ${LIST_DIR_ENTRIES_MAX} entries`)
      if (!page.more || page.entries.length === 0) break
      from = page.entries[page.entries.length - 1].name
    }
    return all.map((entry) => ({ sortName: entry.type === 'dir' ? `${entry.name}/` : entry.name, entry }))
      .sort((a, b) => compareKeys(a.sortName, b.sortName))
  }

  /** Yields the keys (and, with `/`, the prefixes) under `dirKey` (a key prefix ending in `/`, or '' for the bucket) in order. */
  async function * walk (path: string, dirKey: string): AsyncGenerator<WalkItem> {
    const entries = await entriesOf(path)
    if (entries === undefined) return
    for (const { sortName, entry } of entries) {
      const key = dirKey + sortName
      if (dirKey === '' && sortName === `${UPLOADS_DIR}/`) continue
      if (entry.type === 'file') {
        if (key.startsWith(prefix) && compareKeys(key, after) > 0) yield { key, entry, prefix: false }
        continue
      }
      // a directory: every key in it starts with `key`
      if (!(key.startsWith(prefix) || prefix.startsWith(key))) continue
      if (compareKeys(key, after) <= 0 && !after.startsWith(key)) continue
      if (delimiter !== '' && key.startsWith(prefix)) {
        // the delimiter's first match past the prefix lies within `key`: every key in the directory
        // (or its folder object) has that same first match, so the directory is one CommonPrefix,
        // yielded without entering it — a continuation after that prefix never walks it again
        const at = key.indexOf(delimiter, prefix.length)
        if (at >= 0) {
          yield { key: key.slice(0, at + delimiter.length), entry: undefined, prefix: true }
          continue
        }
      }
      // an empty directory is the "folder" object its key names (explicit: made by mkdir or a marker put)
      if (entry.size === 0) {
        if (key.startsWith(prefix) && compareKeys(key, after) > 0) yield { key, entry, prefix: false }
        continue
      }
      yield * walk(`${path === '/' ? '' : path}/${entry.name}`, key)
    }
  }

  try {
    for await (const item of walk(`/${query.bucket}`, '')) {
      let key = item.key
      let isPrefix = item.prefix
      if (!isPrefix && delimiter !== '') {
        const at = key.indexOf(delimiter, prefix.length)
        if (at >= 0) {
          key = key.slice(0, at + delimiter.length)
          isPrefix = true
        }
      }
      if (isPrefix) {
        // keys of one prefix come together: a prefix repeats only right after itself
        if (prefixes[prefixes.length - 1] === key) continue
        if (compareKeys(key, after) <= 0) continue
      }
      if (objects.length + prefixes.length >= query.maxKeys) {
        truncated = true
        break
      }
      if (isPrefix) prefixes.push(key)
      else objects.push({ key, entry: item.entry as DirEntry })
      last = key
    }
  } catch (err) {
    if (!(err instanceof BudgetSpent)) throw err
    // a short page: the client asks again after its last key
    if (last === undefined) throw s3Error('ServiceUnavailable', `the listing read ${LIST_DIR_PAGES_MAX} directory pages without finding a key: list a longer prefix`)
    truncated = true
  }
  return { objects, prefixes, truncated, last }
}

class BudgetSpent extends Error {
  constructor () {
    super('the listing read its budget of directory pages')
    this.name = 'BudgetSpent'
  }
}
