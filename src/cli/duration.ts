import { InvalidArgumentError } from '@dfs/api'

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }

/** Parses durations such as `90s`, `30m`, `1h30m`, `7d` or a bare number of milliseconds. */
export function parseDuration (text: string): number {
  const t = text.trim()
  if (/^\d+$/.test(t)) return Number(t)
  const parts = [...t.matchAll(/(\d+)(ms|s|m|h|d)/g)]
  if (parts.length === 0 || parts.map((p) => p[0]).join('') !== t) {
    throw new InvalidArgumentError(`${JSON.stringify(text)} is not a duration (e.g. 90s, 30m, 1h30m, 7d)`)
  }
  return parts.reduce((ms, p) => ms + Number(p[1]) * UNITS[p[2]], 0)
}
