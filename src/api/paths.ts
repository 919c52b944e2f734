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
  // a put passes its path through here several times (RPC, service, state machine): a path that is
  // already canonical comes back as it is, from one scan without splitting it
  if (isCanonical(input)) return input
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

const SLASH = 0x2f
const DOT = 0x2e

/**
 * Whether `path` (no NUL, at most PATH_LENGTH_MAX) is already what normalizePath returns: `/` alone,
 * or `/` and segments of 1–PATH_SEGMENT_LENGTH_MAX characters that are not `.` or `..`, joined by
 * single slashes, with no trailing slash.
 */
function isCanonical (path: string): boolean {
  if (path.charCodeAt(0) !== SLASH) return false
  if (path.length === 1) return true
  let start = 1
  for (let i = 1; i <= path.length; i++) {
    if (i < path.length && path.charCodeAt(i) !== SLASH) continue
    const len = i - start
    if (len === 0 || len > PATH_SEGMENT_LENGTH_MAX) return false
    if (path.charCodeAt(start) === DOT && (len === 1 || (len === 2 && path.charCodeAt(start + 1) === DOT))) return false
    start = i + 1
  }
  return true
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

/**
 * Characters refused in every name and path a client sends: C0 controls, DEL, C1 controls, and the
 * bidirectional formatting characters (embeddings, overrides, isolates, LRM/RLM, ALM), which can make
 * a name display as a different one ("Trojan Source").
 */
// eslint-disable-next-line no-control-regex
export const UNSAFE_NAME_CHARS = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/u

/** Most UTF-8 bytes of a node's name and of a region (checked with clientName where a node is named). */
export const NODE_NAME_BYTES_MAX = 64

/** A lone surrogate cannot be encoded as UTF-8: such a string would not round-trip. */
const LONE_SURROGATE = /\p{Surrogate}/u

const utf8 = new TextEncoder()

/**
 * Checks a name a client sends (a node name, a region, a tenant …) and returns it in Unicode NFC:
 * non-empty unless `allowEmpty`, at most `bytesMax` UTF-8 bytes after normalization, no control or
 * bidi formatting characters. Throws InvalidArgument naming `what`.
 */
export function clientName (input: unknown, what: string, options: { bytesMax: number, allowEmpty?: boolean }): string {
  if (typeof input !== 'string') throw new InvalidArgumentError(`${what} must be a string`, { what })
  if (input.length === 0 && options.allowEmpty !== true) throw new InvalidArgumentError(`${what} must not be empty`, { what })
  if (LONE_SURROGATE.test(input)) throw new InvalidArgumentError(`${what} is not valid Unicode (a lone surrogate)`, { what })
  const name = input.normalize('NFC')
  const bytes = utf8.encode(name).byteLength
  if (bytes > options.bytesMax) {
    throw new InvalidArgumentError(`${what} is ${bytes} bytes in UTF-8, at most ${options.bytesMax} are allowed`, { what, bytes, bytesMax: options.bytesMax })
  }
  const bad = UNSAFE_NAME_CHARS.exec(name)
  if (bad != null) {
    const code = (bad[0].codePointAt(0) ?? 0).toString(16).toUpperCase().padStart(4, '0')
    throw new InvalidArgumentError(`${what} contains the control or bidi character U+${code}`, { what, codePoint: `U+${code}` })
  }
  return name
}

/**
 * The canonical form of a path a client sends: Unicode NFC, then `normalizePath`'s rules, with the
 * limits counted in UTF-8 bytes (a segment at most PATH_SEGMENT_LENGTH_MAX, the whole at most
 * PATH_LENGTH_MAX) and control and bidi formatting characters refused. Stricter than `normalizePath`,
 * which metadata keeps for replaying its log unchanged: every path that passes here passes there and
 * maps to the same string.
 */
export function clientPath (input: unknown): string {
  if (typeof input !== 'string' || input.length === 0) {
    throw new InvalidArgumentError('a path must be a non-empty string', { path: typeof input === 'string' ? input : typeof input })
  }
  // a cheap bound before normalizing untrusted text (NFC may shorten a string, so the exact limit,
  // in bytes, is checked after it)
  if (input.length > 4 * PATH_LENGTH_MAX) {
    throw new InvalidArgumentError(`path is longer than ${PATH_LENGTH_MAX} bytes`, { length: input.length })
  }
  const nfc = clientName(input, 'path', { bytesMax: PATH_LENGTH_MAX })
  const path = normalizePath(nfc)
  for (const segment of path.split('/')) {
    const bytes = utf8.encode(segment).byteLength
    if (bytes > PATH_SEGMENT_LENGTH_MAX) {
      throw new InvalidArgumentError(`a path segment is ${bytes} bytes in UTF-8, at most ${PATH_SEGMENT_LENGTH_MAX} are allowed`,
        { bytes, bytesMax: PATH_SEGMENT_LENGTH_MAX })
    }
  }
  return path
}

/**
 * Text as a terminal may show it: every control and bidi formatting character (see
 * UNSAFE_NAME_CHARS) written as `\u{…}`, so a name from a server cannot move the cursor, rewrite
 * the line, or reorder what is displayed. `keepNewlines` keeps `\n` (a multi-line message of ours).
 */
export function escapeForTerminal (text: string, options: { keepNewlines?: boolean } = {}): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]|\p{Surrogate}/gu, (c) =>
    c === '\n' && options.keepNewlines === true ? c : `\\u{${(c.codePointAt(0) ?? 0).toString(16)}}`)
}
