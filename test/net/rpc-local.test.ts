import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { generateKeyPair } from '@libp2p/crypto/keys'
import {
  AbortedError, InvalidArgumentError, NotFoundError, PermissionDeniedError, RateLimitedError, type RpcCallInfo, type RpcCallOutcome, type RpcInterceptor
} from '@dfs/api'
import { createHost, type Host } from '../../src/net/host.js'
import { RpcServer, authorization } from '../../src/net/rpc/server.js'
import { LocalRpc } from '../../src/net/rpc/local.js'
import type { RpcMethod } from '../../src/net/rpc/types.js'

const test = suite('net/rpc invokeLocal')

const USER = 'user-peer'
const STRANGER = 'stranger-peer'

interface Ended { name: string, call: RpcCallInfo, outcome: RpcCallOutcome }
interface Ctx { host: Host, rpc: RpcServer, log: string[], ended: Ended[], limited: boolean }
const ctx = {} as Ctx

/** An interceptor that logs its before and after, and keeps every outcome it sees. */
function recorder (name: string, refuse?: () => Error | undefined): RpcInterceptor {
  return {
    name,
    before: (call) => {
      ctx.log.push(`${name}.before:${call.params === undefined ? 'unparsed' : 'parsed'}`)
      const err = refuse?.()
      if (err !== undefined) throw err
    },
    after: (call, outcome) => {
      ctx.log.push(`${name}.after`)
      ctx.ended.push({ name, call, outcome })
    }
  }
}

/** Parses `{ path: string }`, logging that it ran. */
function pathParams (raw: unknown): { path: string } {
  ctx.log.push('params')
  if (typeof raw !== 'object' || raw == null || typeof (raw as { path?: unknown }).path !== 'string') throw new InvalidArgumentError('path must be a string')
  return raw as { path: string }
}

/** The download's bytes: `chunks` chunks of `chunkBytes` each. */
async function * chunksOf (chunks: number, chunkBytes: number, failAt?: number): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < chunks; i++) {
    if (i === failAt) throw new NotFoundError('the extent went away')
    yield new Uint8Array(chunkBytes).fill(i)
  }
}

const methods: RpcMethod[] = [
  {
    name: 'fs.stat',
    action: 'fs.read',
    kind: 'unary',
    params: pathParams,
    handle: async ({ params, peer }) => {
      ctx.log.push('handler')
      if (params.path === '/missing') throw new NotFoundError(`${params.path} does not exist`)
      return { path: params.path, peer }
    }
  },
  {
    name: 'fs.put',
    action: 'fs.write',
    kind: 'upload',
    params: pathParams,
    handle: async ({ body }) => {
      ctx.log.push('handler')
      let size = 0
      for await (const chunk of body) size += chunk.byteLength
      return { size }
    }
  },
  {
    name: 'fs.get',
    action: 'fs.read',
    kind: 'download',
    params: (raw) => {
      const p = pathParams(raw) as { path: string, length?: number, offset?: number }
      return p
    },
    handle: async ({ params }) => {
      ctx.log.push('handler')
      // length: chunks of 1000 bytes; offset: fail before that chunk
      return { result: { path: params.path }, body: chunksOf(params.length ?? 3, 1000, params.offset) }
    }
  },
  {
    name: 'test.hang',
    action: 'fs.read',
    kind: 'unary',
    params: () => null,
    handle: async ({ signal }) => {
      ctx.log.push('handler')
      if (!signal.aborted) await new Promise((resolve) => { signal.addEventListener('abort', resolve, { once: true }) })
      ctx.log.push('handler:aborted')
      throw signal.reason
    }
  }
]

test.before(async () => {
  ctx.host = await createHost({ privateKey: await generateKeyPair('Ed25519') })
  ctx.limited = false
  ctx.rpc = new RpcServer({
    host: ctx.host,
    interceptors: [
      // an audit log ahead of authorization sees refused calls too
      recorder('audit'),
      authorization(async (peer, action) => {
        ctx.log.push(`authorize:${action}`)
        if (peer !== USER) throw new PermissionDeniedError(`peer ${peer} may not ${action}`, { peer, action })
      }),
      recorder('limits', () => ctx.limited ? new RateLimitedError('slow down') : undefined),
      recorder('metrics'),
      // a broken interceptor's after is logged and swallowed
      { name: 'broken', after: () => { throw new Error('broken after') } }
    ]
  })
  ctx.rpc.register(...methods)
  await ctx.rpc.start()
})

test.after(async () => {
  await ctx.rpc.stop()
  await ctx.host.stop()
})

test.before.each(() => {
  ctx.log = []
  ctx.ended = []
  ctx.limited = false
})

async function rejects (p: Promise<unknown>, name: string): Promise<Error> {
  try {
    await p
  } catch (err) {
    assert.is((err as Error).name, name, (err as Error).message)
    return err as Error
  }
  assert.unreachable(`expected ${name}`)
  throw new Error('unreachable')
}

function outcomeOf (name: string): RpcCallOutcome {
  const e = ctx.ended.find((x) => x.name === name)
  assert.ok(e !== undefined, `${name}.after ran`)
  return (e).outcome
}

test('a call before start is Unavailable', async () => {
  const host = await createHost({ privateKey: await generateKeyPair('Ed25519') })
  try {
    const server = new RpcServer({ host, authorize: async () => {} })
    server.register(...methods)
    await rejects(server.invokeLocal(USER, 'fs.stat', { path: '/a' }), 'Unavailable')
    await rejects(new LocalRpc(server, USER).call('fs.stat', { path: '/a' }), 'Unavailable')
    assert.equal(ctx.log, [])
  } finally {
    await host.stop()
  }
})

test('an unknown method is UnknownMethod, and no interceptor sees it', async () => {
  await rejects(ctx.rpc.invokeLocal(USER, 'fs.nothing', {}), 'UnknownMethod')
  assert.equal(ctx.log, [])
  assert.equal(ctx.ended, [])
})

test('befores run in order, the params are validated right after authorization, afters run in reverse', async () => {
  const rpc = new LocalRpc(ctx.rpc, USER)
  const result = await rpc.call('fs.stat', { path: '/a' }) as unknown
  assert.equal(result, { path: '/a', peer: USER })
  assert.equal(ctx.log, [
    'audit.before:unparsed', 'authorize:fs.read', 'params', 'limits.before:parsed', 'metrics.before:parsed', 'handler',
    'metrics.after', 'limits.after', 'audit.after'
  ])
  const outcome = outcomeOf('audit')
  assert.is(outcome.ok, true)
  assert.is(outcome.error, undefined)
  assert.ok(outcome.durationMs >= 0)
  const call = ctx.ended[0].call
  assert.equal({ peer: call.peer, method: call.method, action: call.action, kind: call.kind, params: call.params },
    { peer: USER, method: 'fs.stat', action: 'fs.read', kind: 'unary', params: { path: '/a' } })
})

test('authorization refuses a peer: PermissionDenied, params not validated, handler not run', async () => {
  await rejects(new LocalRpc(ctx.rpc, STRANGER).call('fs.stat', { path: '/a' }), 'PermissionDenied')
  // malformed params from a refused peer: still PermissionDenied, the validator never sees them
  await rejects(ctx.rpc.invokeLocal(STRANGER, 'fs.stat', 42), 'PermissionDenied')
  assert.equal(ctx.log, ['audit.before:unparsed', 'authorize:fs.read', 'audit.after', 'audit.before:unparsed', 'authorize:fs.read', 'audit.after'])
  const outcome = outcomeOf('audit')
  assert.is(outcome.ok, false)
  assert.is(outcome.error?.name, 'PermissionDenied')
  assert.is(ctx.ended[0].call.params, undefined)
})

test('params are validated after authorization: InvalidArgument, handler not run', async () => {
  await rejects(ctx.rpc.invokeLocal(USER, 'fs.stat', { path: 42 }), 'InvalidArgument')
  assert.equal(ctx.log, ['audit.before:unparsed', 'authorize:fs.read', 'params', 'audit.after'])
  assert.is(outcomeOf('audit').error?.name, 'InvalidArgument')
  assert.is(ctx.ended[0].call.params, undefined)
})

test('a before that refuses stops the chain: later befores and the handler do not run, reached afters do', async () => {
  ctx.limited = true
  await rejects(ctx.rpc.invokeLocal(USER, 'fs.stat', { path: '/a' }), 'RateLimited')
  assert.equal(ctx.log, ['audit.before:unparsed', 'authorize:fs.read', 'params', 'limits.before:parsed', 'limits.after', 'audit.after'])
  assert.is(outcomeOf('limits').error?.name, 'RateLimited')
})

test('a handler\'s error reaches the caller and every after by name', async () => {
  await rejects(ctx.rpc.invokeLocal(USER, 'fs.stat', { path: '/missing' }), 'NotFound')
  assert.equal(ctx.ended.map((e) => [e.name, e.outcome.ok, e.outcome.error?.name]),
    [['metrics', false, 'NotFound'], ['limits', false, 'NotFound'], ['audit', false, 'NotFound']])
})

test('an upload: the handler reads the body, bytesIn counts its bytes', async () => {
  const body = (async function * () {
    yield new Uint8Array(100)
    yield new Uint8Array(0)
    yield new Uint8Array(4096)
  })()
  const result = await new LocalRpc(ctx.rpc, USER).upload('fs.put', { path: '/u' }, body) as unknown
  assert.equal(result, { size: 4196 })
  const outcome = outcomeOf('audit')
  assert.equal({ ok: outcome.ok, bytesIn: outcome.bytesIn, bytesOut: outcome.bytesOut }, { ok: true, bytesIn: 4196, bytesOut: 0 })
  // an upload without a body is refused
  await rejects(ctx.rpc.invokeLocal(USER, 'fs.put', { path: '/u' }), 'InvalidArgument')
})

test('a download: its afters run only when the body ends, with the bytes read', async () => {
  const { result, body } = await new LocalRpc(ctx.rpc, USER).download('fs.get', { path: '/d', length: 3 })
  assert.equal(result, { path: '/d' })
  assert.equal(ctx.ended, [], 'no after while the body is unread')
  let bytes = 0
  for await (const chunk of body) {
    bytes += chunk.byteLength
    assert.equal(ctx.ended, [], 'no after while the body is read')
  }
  assert.is(bytes, 3000)
  const outcome = outcomeOf('audit')
  assert.equal({ ok: outcome.ok, bytesIn: outcome.bytesIn, bytesOut: outcome.bytesOut }, { ok: true, bytesIn: 0, bytesOut: 3000 })
  assert.is(ctx.ended.length, 3)
})

test('a download the caller leaves early ends as Aborted, with the bytes it read', async () => {
  const { body } = await new LocalRpc(ctx.rpc, USER).download('fs.get', { path: '/d', length: 5 })
  const first = await body.next()
  assert.is(first.done, false)
  assert.equal(ctx.ended, [])
  await body.return(undefined)
  const outcome = outcomeOf('audit')
  assert.is(outcome.ok, false)
  assert.is(outcome.error?.name, 'Aborted')
  assert.is(outcome.bytesOut, 1000)
  // once, for each interceptor
  assert.is(ctx.ended.length, 3)
})

test('a download whose body fails midway: the caller gets the error, the afters see it', async () => {
  const { body } = await new LocalRpc(ctx.rpc, USER).download('fs.get', { path: '/d', length: 5, offset: 2 })
  let bytes = 0
  await rejects((async () => { for await (const chunk of body) bytes += chunk.byteLength })(), 'NotFound')
  assert.is(bytes, 2000)
  const outcome = outcomeOf('audit')
  assert.equal({ ok: outcome.ok, error: outcome.error?.name, bytesOut: outcome.bytesOut }, { ok: false, error: 'NotFound', bytesOut: 2000 })
})

test('the caller\'s signal aborts a slow handler; timeoutMs ends it with DeadlineExceeded', async () => {
  const controller = new AbortController()
  const pending = ctx.rpc.invokeLocal(USER, 'test.hang', null, { signal: controller.signal })
  // wait for the handler to start rather than sleeping
  for (let i = 0; i < 1000 && !ctx.log.includes('handler'); i++) await new Promise((resolve) => setImmediate(resolve))
  assert.ok(ctx.log.includes('handler'))
  controller.abort(new AbortedError('the HTTP client went away'))
  await rejects(pending, 'Aborted')
  assert.ok(ctx.log.includes('handler:aborted'))
  assert.is(outcomeOf('audit').error?.name, 'Aborted')

  ctx.log = []
  ctx.ended = []
  await rejects(ctx.rpc.invokeLocal(USER, 'test.hang', null, { timeoutMs: 20 }), 'DeadlineExceeded')
  assert.ok(ctx.log.includes('handler:aborted'))
  assert.is(outcomeOf('audit').error?.name, 'DeadlineExceeded')

  // a signal aborted already: refused before any interceptor or handler runs
  ctx.log = []
  ctx.ended = []
  await rejects(ctx.rpc.invokeLocal(USER, 'test.hang', null, { signal: AbortSignal.abort(new AbortedError('gone')) }), 'Aborted')
  assert.equal([ctx.log, ctx.ended], [[], []])
})

test('an upload handler that answers before reading its whole body fails the call (MalformedFrame, as over the network)', async () => {
  const early: RpcMethod = {
    name: 'fs.early',
    action: 'fs.write',
    kind: 'upload',
    params: pathParams,
    handle: async ({ body }) => {
      for await (const _ of body) break // one chunk, then an answer
      return { size: 1 }
    }
  }
  ctx.rpc.register(early)
  const body = (async function * () { yield new Uint8Array(10); yield new Uint8Array(10) })()
  await rejects(ctx.rpc.invokeLocal(USER, 'fs.early', { path: '/u' }, { body }), 'MalformedFrame')
  assert.is(outcomeOf('audit').error?.name, 'MalformedFrame')
})

test.run()
