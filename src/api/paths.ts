import { InvalidArgumentError } from './errors.js'

export const PATH_LENGTH_MAX = 4096
export const PATH_SEGMENT_LENGTH_MAX = 255

/**
 * Returns the canonical form of a file path: absolute, `/`-separated, no empty, `.` or `..` segments,
 * no trailing slash (except the root `/`). Throws InvalidArgument for anything else rather than
 * guessing what was meant. A missing leading slash is added.
 */
export function normalizePath (input: unknown): string {
  if (typeof input !== 'string' || input.length === 0) {
    throw new InvalidArgumentError('a path must be a non-empty string', { path: input })
  }
  if (input.length > PATH_LENGTH_MAX) {
    throw new InvalidArgumentError(`path is longer than ${PATH_LENGTH_MAX} characters`, { length: input.length })
  }
  if (input.includes('\0')) {
    throw new InvalidArgumentError('a path may not contain NUL', { path: input })
  }
  const segments = input.split('/').filter((s, i, all) => !(s === '' && (i === 0 || i === all.length - 1)))
  for (const s of segments) {
    if (s === '' || s === '.' || s === '..') {
      throw new InvalidArgumentError(`path ${JSON.stringify(input)} has an empty, "." or ".." segment`, { path: input })
    }
    if (s.length > PATH_SEGMENT_LENGTH_MAX) {
      throw new InvalidArgumentError(`a path segment is longer than ${PATH_SEGMENT_LENGTH_MAX} characters`, { path: input })
    }
  }
  return '/' + segments.join('/')
}

/** The parent directory of a canonical path (`/` for top-level entries and for `/` itself). */
export function parentPath (path: string): string {
  const i = path.lastIndexOf('/')
  return i <= 0 ? '/' : path.slice(0, i)
}

/** The last segment of a canonical path (empty for `/`). */
export function baseName (path: string): string {
  return path.slice(path.lastIndexOf('/') + 1)
}
