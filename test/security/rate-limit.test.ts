import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import type { MetadataService, MetadataView, RpcCallInfo, UserRecord } from '@dfs/api'
import { TokenBuckets, rateLimit } from '../../src/security/rate-limit.js'
import type { Caller } from '../../src/security/index.js'

const test = suite('security/rate limit')

test('a bucket grants a burst of max(rate, 1), then one request per 1/rate s, and says when to retry', () => {
  const b = new TokenBuckets()
  for (let i = 0; i < 5; i++) assert.is(b.take('p', 5, 1000), 0, `request ${i} of the burst`)
  assert.is(b.take('p', 5, 1000), 200, 'the next token comes in 200 ms')
  assert.is(b.take('p', 5, 1100), 100)
  assert.is(b.take('p', 5, 1200), 0)
  assert.is(b.take('p', 5, 1200), 200)
  // a rate under 1/s still allows one request, then waits
  assert.is(b.take('slow', 0.5, 0), 0)
  assert.is(b.take('slow', 0.5, 0), 2000)
  // 0 is unlimited and keeps no state
  for (let i = 0; i < 100; i++) assert.is(b.take('free', 0, 0), 0)
  assert.is(b.size, 2)
})

test('buckets are bounded: idle (refilled) ones go first, then the least recently used', () => {
  const b = new TokenBuckets(3)
  b.take('idle', 10, 0)
  b.take('busy1', 1, 900)
  b.take('busy2', 1, 950)
  b.take('new', 1, 1000)
  assert.is(b.size, 3)
  // `idle` refilled long ago and was dropped: the busy ones keep their empty buckets
  assert.is(b.take('busy1', 1, 1000), 900)
  assert.is(b.take('busy2', 1, 1000), 950)
  // when none is idle, the least recently used goes
  b.take('another', 1, 1000)
  assert.is(b.size, 3)
  assert.is(b.take('new', 1, 1000), 0, 'the least recently used bucket was dropped: a fresh one')
})

function call (peer: string, action: string): RpcCallInfo {
  return { peer, method: 'fs.stat', action, kind: 'unary', params: undefined, startedAtMs: 0 }
}

test('the interceptor limits users by their tenant\'s rate, else the cluster\'s, and never members acting as nodes', async () => {
  const users = new Map<string, UserRecord>([
    ['u', { id: 'u', role: 'user', tenant: null }],
    ['t', { id: 't', role: 'user', tenant: 'acme' }]
  ])
  const config = { userRequestRate: 2 }
  const view = {
    config: () => config,
    tenant: (name: string) => name === 'acme' ? { name, requestRate: 1 } : undefined
  } as unknown as MetadataView
  const metadata = { staleRead: <T>(fn: (v: MetadataView) => T): T => fn(view) } as unknown as MetadataService
  const now = 10_000
  const interceptor = rateLimit({
    metadata,
    now: () => now,
    caller: async (peer): Promise<Caller> => ({ peer, member: peer === 'm', user: users.get(peer) })
  })
  const before = interceptor.before as (c: RpcCallInfo, o: { signal: AbortSignal }) => Promise<void>
  const signal = new AbortController().signal
  const outcome = async (peer: string, action = 'fs.read'): Promise<string> =>
    await before(call(peer, action), { signal }).then(() => 'ok', (err: any) => `${err.name as string}:${err.details.retryAfterMs as number}`)
  assert.is(await outcome('u'), 'ok')
  assert.is(await outcome('u'), 'ok')
  assert.is(await outcome('u'), 'RateLimited:500', 'the cluster rate is 2/s')
  assert.is(await outcome('t'), 'ok')
  assert.is(await outcome('t'), 'RateLimited:1000', 'the tenant\'s own rate, 1/s, wins')
  for (let i = 0; i < 50; i++) assert.is(await outcome('m', 'extent.write'), 'ok')
  config.userRequestRate = 0
  for (let i = 0; i < 50; i++) assert.is(await outcome('u'), 'ok', '0 is unlimited')
})

test.run()
