import { clientName, clientPath, FILE_CONTENT_TYPE_BYTES_MAX, InvalidArgumentError, requireFileMeta, requireUserMeta } from '@dfs/api'

/** Checks for untrusted RPC params: each returns the value typed or throws InvalidArgument. */

export function record (raw: unknown, method: string): Record<string, unknown> {
  if (raw == null || typeof raw !== 'object' || Array.isArray(raw) || raw instanceof Uint8Array) {
    throw new InvalidArgumentError(`${method} takes a map of parameters`)
  }
  return raw as Record<string, unknown>
}

export function text (params: Record<string, unknown>, key: string, options: { optional?: false, max?: number }): string
export function text (params: Record<string, unknown>, key: string, options: { optional: true, max?: number }): string | undefined
export function text (params: Record<string, unknown>, key: string, options: { optional?: boolean, max?: number }): string | undefined {
  const v = params[key]
  if (v == null && options.optional === true) return undefined
  if (typeof v !== 'string') throw new InvalidArgumentError(`parameter ${key} must be a string`, { key })
  if (v.length > (options.max ?? 4096)) throw new InvalidArgumentError(`parameter ${key} is too long`, { key })
  return v
}

export function integer (params: Record<string, unknown>, key: string, options: { min: number, max: number, optional?: boolean }): number | undefined {
  const v = params[key]
  if (v == null && options.optional === true) return undefined
  if (typeof v !== 'number' || !Number.isInteger(v) || v < options.min || v > options.max) {
    throw new InvalidArgumentError(`parameter ${key} must be an integer in ${options.min}..${options.max}`, { key })
  }
  return v
}

/** One of `allowed` (a string), or `fallback` when absent. */
export function oneOf<T extends string> (params: Record<string, unknown>, key: string, allowed: readonly T[], fallback: T): T {
  const v = params[key]
  if (v == null) return fallback
  if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) {
    // eslint-disable-next-line @typescript-eslint/no-base-to-string -- echoes untrusted input, whatever its type
    throw new InvalidArgumentError(`parameter ${key} must be one of ${allowed.join(', ')}`, { key, value: String(v).slice(0, 32) })
  }
  return v as T
}

/** A file path a client sends, in canonical form (`clientPath`: NFC, UTF-8 byte limits, no control or bidi characters). */
export function path (params: Record<string, unknown>, key: string): string {
  const v = params[key]
  if (typeof v !== 'string') throw new InvalidArgumentError(`parameter ${key} must be a string`, { key })
  return clientPath(v)
}

/** A name a client sends (node name, region, a path segment …): `clientName`, at most `bytesMax` UTF-8 bytes. */
export function name (params: Record<string, unknown>, key: string, options: { bytesMax: number, optional?: false, allowEmpty?: boolean }): string
export function name (params: Record<string, unknown>, key: string, options: { bytesMax: number, optional: true, allowEmpty?: boolean }): string | undefined
export function name (params: Record<string, unknown>, key: string, options: { bytesMax: number, optional?: boolean, allowEmpty?: boolean }): string | undefined {
  const v = params[key]
  if (v == null && options.optional === true) return undefined
  return clientName(v, `parameter ${key}`, options)
}

/** A list of 1..`max` file paths a client sends, each checked as `path` checks one. */
export function paths (params: Record<string, unknown>, key: string, max: number): string[] {
  const v = params[key]
  if (!Array.isArray(v) || v.length < 1 || v.length > max) throw new InvalidArgumentError(`parameter ${key} must list 1 to ${max} paths`, { key })
  return v.map((p, i) => {
    if (typeof p !== 'string') throw new InvalidArgumentError(`parameter ${key}[${i}] must be a string`, { key: `${key}[${i}]` })
    return clientPath(p)
  })
}

/**
 * A file's `contentType` and user `meta` as a client sends them (fs.put, fs.compose), checked by the
 * rules of FileMeta (requireFileMeta): only the fields given.
 */
export function fileMeta (params: Record<string, unknown>): { contentType?: string, meta?: Record<string, string> } {
  const contentType = text(params, 'contentType', { optional: true, max: FILE_CONTENT_TYPE_BYTES_MAX })
  const meta = params.meta == null ? undefined : requireUserMeta(params.meta, 'meta')
  if (contentType !== undefined) requireFileMeta({ contentType }, 'params')
  return { ...(contentType !== undefined ? { contentType } : {}), ...(meta !== undefined ? { meta } : {}) }
}
