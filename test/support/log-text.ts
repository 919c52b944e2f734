/**
 * Log-like text for compression tests and benchmarks: lines of an application log with timestamps,
 * levels, request ids, paths and durations, from a seeded generator, so a run can be repeated. It
 * compresses roughly as real logs do (lz4 to about a quarter, zstd further), not as a repeated
 * pattern would (to almost nothing).
 */
const LEVELS = ['INFO', 'INFO', 'INFO', 'DEBUG', 'WARN', 'ERROR']
const COMPONENTS = ['http', 'db', 'cache', 'auth', 'queue', 'scheduler', 'storage']
const MESSAGES = [
  'request completed', 'cache miss for key', 'slow query detected', 'user logged in', 'token refreshed',
  'job enqueued', 'job finished', 'connection reset by peer', 'retrying after backoff', 'upstream timeout'
]
const PATHS = ['/api/v1/users', '/api/v1/orders', '/api/v1/items', '/healthz', '/metrics', '/api/v2/search']

/** `bytes` bytes of log-like UTF-8 text (ASCII only), the same for the same seed. */
export function logLikeText (bytes: number, seed = 1): Uint8Array {
  let state = seed >>> 0 || 1
  const next = (): number => {
    // xorshift32
    state ^= state << 13
    state ^= state >>> 17
    state ^= state << 5
    return (state >>> 0)
  }
  const pick = <T>(xs: T[]): T => xs[next() % xs.length]
  const out = new Uint8Array(bytes)
  const encoder = new TextEncoder()
  let at = 0
  let ms = Date.UTC(2026, 0, 1)
  while (at < bytes) {
    ms += next() % 50
    const line = `${new Date(ms).toISOString()} ${pick(LEVELS)} [${pick(COMPONENTS)}] ${pick(MESSAGES)} ` +
      `req=${next().toString(16).padStart(8, '0')} path=${pick(PATHS)}/${next() % 10000} ` +
      `status=${pick([200, 200, 200, 201, 404, 500])} took=${next() % 2000}ms user=u${next() % 5000}\n`
    const { written } = encoder.encodeInto(line, out.subarray(at))
    at += written
  }
  return out
}
