import { PATH_SEGMENT_LENGTH_MAX, clientPath } from '@dfs/api'
import { s3Error } from './errors.js'

/**
 * How S3 names map onto dfs paths. A bucket is a top-level directory of the caller's namespace; an
 * object key is the path under it, so `a/b.txt` in bucket `docs` is the file `/docs/a/b.txt`, and
 * what `dfs fs` writes there is an object and the other way round. Because keys are paths, a key
 * must be one: no empty, `.` or `..` segment, no control characters, segments of at most 255 bytes,
 * and a key cannot name both an object and a "directory" (`a` and `a/b`). A key ending in `/` of
 * an empty object (the "folder" marker of S3 consoles and rclone) is an explicit directory.
 */

/** Most bytes of an object key in UTF-8 (S3's limit). */
export const KEY_BYTES_MAX = 1024

/**
 * The directory (inside each bucket) where multipart uploads keep their parts until completion:
 * keys under it are refused and listings leave it out.
 */
export const UPLOADS_DIR = '.s3-multipart'

const BUCKET_NAME = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/
const IPV4_LIKE = /^\d{1,3}(\.\d{1,3}){3}$/

/** Checks a bucket name as S3 does (3–63 of a-z 0-9 . -, not an IP address, no `..`). */
export function requireBucketName (name: string): string {
  if (!BUCKET_NAME.test(name) || IPV4_LIKE.test(name) || name.includes('..') || name.includes('.-') || name.includes('-.')) {
    throw s3Error('InvalidBucketName', 'The specified bucket is not valid.', { fields: { BucketName: name.slice(0, 255) } })
  }
  return name
}

/** Whether `name` could be a bucket (used to tell a bucket from a file at the top of a namespace). */
export function isBucketName (name: string): boolean {
  try {
    requireBucketName(name)
    return true
  } catch {
    return false
  }
}

const utf8 = new TextEncoder()

/** The directory of a bucket. */
export function bucketPath (bucket: string): string {
  return `/${bucket}`
}

/**
 * The path of an object key (which must be one; see the module comment). `dir`: the key ends in `/`
 * (a directory marker); such a key is its directory's path.
 */
export function objectPath (bucket: string, key: string): { path: string, dir: boolean } {
  if (key.length === 0) throw s3Error('InvalidArgument', 'an object key must not be empty')
  if (utf8.encode(key).byteLength > KEY_BYTES_MAX) {
    throw s3Error('KeyTooLongError', `an object key may be at most ${KEY_BYTES_MAX} bytes`)
  }
  const dir = key.endsWith('/')
  const body = dir ? key.slice(0, -1) : key
  const fields = { Key: key }
  if (body.length === 0 || body.startsWith('/') || body.split('/').some((s) => s === '' || s === '.' || s === '..')) {
    throw s3Error('InvalidArgument', 'keys are paths here: a key may not start with "/" or hold an empty, "." or ".." segment', { fields })
  }
  if (body === UPLOADS_DIR || body.startsWith(`${UPLOADS_DIR}/`)) {
    throw s3Error('InvalidArgument', `keys under ${UPLOADS_DIR}/ are reserved for multipart uploads`, { fields })
  }
  for (const segment of body.split('/')) {
    if (utf8.encode(segment).byteLength > PATH_SEGMENT_LENGTH_MAX) {
      throw s3Error('KeyTooLongError', `each "/"-separated part of a key may be at most ${PATH_SEGMENT_LENGTH_MAX} bytes`, { fields })
    }
  }
  let path: string
  try {
    path = clientPath(`/${bucket}/${body}`)
  } catch (err) {
    throw s3Error('InvalidArgument', `key ${JSON.stringify(key.slice(0, 200))} is not a valid path: ${(err as Error).message}`, { fields })
  }
  return { path, dir }
}

/** The key of a path inside `bucket` (the inverse of objectPath for files). */
export function keyOf (bucket: string, path: string): string {
  const prefix = `/${bucket}/`
  if (!path.startsWith(prefix)) throw new Error(`path ${path} is not in bucket ${bucket}`)
  return path.slice(prefix.length)
}

/** Compares two keys as S3 orders them: by their UTF-8 bytes. */
export function compareKeys (a: string, b: string): number {
  if (a === b) return 0
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'))
}
