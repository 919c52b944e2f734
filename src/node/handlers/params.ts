import { InvalidArgumentError } from '@dfs/api'

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
