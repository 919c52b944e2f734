import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { lpStream } from '@libp2p/utils'
import { InvalidArgumentError, NoQuorumError, PermissionDeniedError, UnavailableError, type RpcCallInfo, type RpcCallOutcome, type RpcInterceptor } from '@dfs/api'
import { createHost, type Host } from '../../src/net/host.js'
import { RpcServer, authorization, type RpcServerInit } from '../../src/net/rpc/server.js'
import { RpcClient } from '../../src/net/rpc/client.js'
import { CREDIT_BATCH_FRAMES, DATA_WINDOW_FRAMES, FRAME_BYTES_MAX, RPC_PROTOCOL } from '../../src/net/constants.js'
import { FramedStream, FrameKind, encodeFrame } from '../../src/net/rpc/frames.js'
import type { Multiaddr } from '@multiformats/multiaddr'

const test = suite('net/rpc over real libp2p')

interface Ctx { server: Host, client: Host, stranger: Host, addr: Multiaddr, rpc: RpcServer, calls: string[] }
const ctx = {} as Ctx

test.before(async () => {
  ctx.server = await createHost({ privateKey: await generateKeyPair('Ed25519'), listen: ['/ip4/127.0.0.1/tcp/0'] })
  ctx.client = await createHost({ privateKey: await generateKeyPair('Ed25519') })
  ctx.stranger = await createHost({ privateKey: await generateKeyPair('Ed25519') })
  ctx.addr = ctx.server.getMultiaddrs()[0]
  ctx.calls = []
  const allowed = ctx.client.peerId.toString()
  ctx.rpc = new RpcServer({
    host: ctx.server,
    authorize: async (peer, action) => {
      ctx.calls.push(`${action}:${peer === allowed ? 'client' : 'stranger'}`)
      if (peer !== allowed) throw new PermissionDeniedError(`peer ${peer} may not ${action}`, { peer, action })
    }
  })
  ctx.rpc.register(
    {
      name: 'echo',
      action: 'test.read',
      kind: 'unary',
      params: (raw) => {
        if (typeof raw !== 'object' || raw == null) throw new InvalidArgumentError('params must be a map')
        return raw as { text: string, bytes?: Uint8Array }
      },
      handle: async ({ params, peer }) => ({ text: params.text, bytes: params.bytes, peer })
    },
    {
      name: 'hang',
      action: 'test.read',
      kind: 'unary',
      params: () => null,
      handle: async ({ signal }) => {
        await new Promise((resolve) => { signal.addEventListener('abort', resolve, { once: true }) })
        ctx.calls.push('hang:aborted')
        throw signal.reason
      }
    },
    {
      // like a Raft proposal in a minority: at its deadline it knows why it could not finish
      name: 'verdict',
      action: 'test.read',
      kind: 'unary',
      params: () => null,
      handle: async ({ signal }) => await untilVerdict(signal)
    },
    {
      name: 'commit',
      action: 'test.write',
      kind: 'upload',
      params: () => null,
      handle: async ({ body, signal }) => {
        for await (const _ of body) { /* drain */ }
        return await untilVerdict(signal)
      }
    },
    {
      name: 'sum',
      action: 'test.write',
      kind: 'upload',
      params: () => null,
      handle: async ({ body }) => {
        let total = 0
        let sum = 0
        for await (const chunk of body) {
          total += chunk.byteLength
          for (const b of chunk) sum = (sum + b) % 65521
        }
        return { total, sum }
      }
    },
    {
      name: 'gen',
      action: 'test.read',
      kind: 'download',
      params: (raw) => raw as { size: number, failAt?: number },
      handle: async ({ params }) => ({
        result: { size: params.size },
        body: (async function * () {
          let sent = 0
          while (sent < params.size) {
            if (params.failAt != null && sent >= params.failAt) throw new InvalidArgumentError('failing on purpose')
            const n = Math.min(3 * 1024 * 1024 + 7, params.size - sent)
            const chunk = new Uint8Array(n)
            for (let i = 0; i < n; i++) chunk[i] = (sent + i) & 0xff
            sent += n
            yield chunk
          }
        })()
      })
    }
  )
  await ctx.rpc.start()
})

/** Waits for `signal`; at a deadline it throws NoQuorum, as a Raft group without a leader does. */
async function untilVerdict (signal: AbortSignal): Promise<never> {
  await new Promise((resolve) => { signal.addEventListener('abort', resolve, { once: true }) })
  const reason = signal.reason as Error
  if (reason?.name === 'TimeoutError') throw new NoQuorumError('no leader is elected')
  throw reason
}

test.after(async () => {
  await ctx.rpc.stop()
  await Promise.all([ctx.server.stop(), ctx.client.stop(), ctx.stranger.stop()])
})

test('a unary call returns its result, bytes stay bytes, and the handler sees the Noise-proven peer', async () => {
  const c = new RpcClient({ host: ctx.client, target: ctx.addr })
  const bytes = new Uint8Array([0, 1, 2, 255])
  const r = await c.callUnchecked<any>('echo', { text: 'hi', bytes })
  assert.is(r.text, 'hi')
  assert.ok(r.bytes instanceof Uint8Array)
  assert.equal([...r.bytes], [...bytes])
  assert.is(r.peer, ctx.client.peerId.toString())
  // the stream is reused for the next call
  for (let i = 0; i < 20; i++) assert.is((await c.callUnchecked<any>('echo', { text: String(i) })).text, String(i))
  await c.close()
})

test('an idle stream is reused only within the reuse window: past it the next call opens a new one', async () => {
  // the server closes streams idle for RPC_STREAM_IDLE_CLOSE_MS; a client reusing one that long idle
  // raced that close and failed its call (RPC_STREAM_REUSE_IDLE_MS is half of it)
  const c = new RpcClient({ host: ctx.client, target: ctx.addr, reuseIdleMs: 300 })
  const rpcStreams = (): string[] => ctx.client.getConnections().flatMap((conn) => conn.streams)
    .filter((s) => s.protocol === RPC_PROTOCOL && s.status === 'open').map((s) => s.id)
  await c.callUnchecked('echo', { text: 'a' })
  const [first] = rpcStreams()
  assert.ok(first !== undefined)
  await c.callUnchecked('echo', { text: 'b' })
  assert.equal(rpcStreams(), [first], 'reused within the window')
  await new Promise((resolve) => setTimeout(resolve, 500))
  await c.callUnchecked('echo', { text: 'c' })
  const now = rpcStreams()
  assert.is(now.length, 1)
  assert.is.not(now[0], first, 'a stream idle past the window is closed, not reused')
  await c.close()
})

test('a pooled stream whose connection closes before the call\'s first write: the call goes on a new connection', async () => {
  const c = new RpcClient({ host: ctx.client, target: ctx.addr })
  await c.callUnchecked('echo', { text: 'a' }) // leaves its stream in the pool
  const before = ctx.client.getConnections().map((conn) => conn.id)
  assert.is(before.length, 1)
  // the connection closes while the upload waits for its body's first chunk (after #take checked the
  // pooled stream): its first write finds the stream closed, and no byte of the call has left
  const result = await c.uploadUnchecked('sum', null, (async function * () {
    await Promise.all(ctx.client.getConnections().map(async (conn) => { await conn.close() }))
    yield new Uint8Array([1, 2, 3])
  })())
  assert.equal(result, { total: 3, sum: 6 })
  const after = ctx.client.getConnections().map((conn) => conn.id)
  assert.is(after.length, 1)
  assert.is.not(after[0], before[0], 'a new connection')
  // a unary call and a download after it reuse the new stream as usual
  assert.equal((await c.callUnchecked<{ text: string }>('echo', { text: 'b' })).text, 'b')
  await c.close()
})

test('typed errors cross the wire by name, and the call is authorized first', async () => {
  const c = new RpcClient({ host: ctx.stranger, target: ctx.addr })
  try {
    await c.callUnchecked('echo', { text: 'x' })
    assert.unreachable('a stranger must be refused')
  } catch (err: any) {
    assert.is(err.name, 'PermissionDenied')
    assert.is(err.details.action, 'test.read')
  }
  const ok = new RpcClient({ host: ctx.client, target: ctx.addr })
  try {
    await ok.callUnchecked('nope', {})
    assert.unreachable()
  } catch (err: any) {
    assert.is(err.name, 'UnknownMethod')
  }
  try {
    await ok.callUnchecked('echo', 7)
    assert.unreachable()
  } catch (err: any) {
    assert.is(err.name, 'InvalidArgument')
  }
  await ok.close()
  await c.close()
})

test('an upload of 40 MiB streams under flow control', async () => {
  const c = new RpcClient({ host: ctx.client, target: ctx.addr })
  let expected = 0
  let sent = 0
  async function * body (): AsyncGenerator<Uint8Array> {
    for (let i = 0; i < 40; i++) {
      const chunk = new Uint8Array(1024 * 1024 + (i % 3))
      for (let j = 0; j < chunk.length; j += 4096) chunk[j] = (i + j) & 0xff
      for (let j = 0; j < chunk.length; j += 4096) expected = (expected + chunk[j]) % 65521
      sent += chunk.length
      yield chunk
    }
  }
  const r = await c.uploadUnchecked<any>('sum', null, body())
  assert.is(r.total, sent)
  assert.is(r.sum, expected)
  // and the stream still serves a unary call afterwards
  assert.is((await c.callUnchecked<any>('echo', { text: 'after' })).text, 'after')
  await c.close()
})

test('an upload leaves in as few writes as its body allows: header with the first DATA, END with the last', async () => {
  const c = new RpcClient({ host: ctx.client, target: ctx.addr })
  const writes: number[] = []
  const dial = ctx.client.dialProtocol
  // count the client stream's writes: each is one muxer frame the node reads and acknowledges
  ctx.client.dialProtocol = async (...args: Parameters<Host['dialProtocol']>) => {
    const stream = await dial.apply(ctx.client, args)
    const send = stream.send.bind(stream)
    stream.send = (data) => { writes.push(data.byteLength); return send(data) }
    return stream
  }
  try {
    assert.equal(await c.uploadUnchecked<any>('sum', null, (async function * () {})()), { total: 0, sum: 0 })
    assert.is(writes.length, 1)
    assert.equal(await c.uploadUnchecked<any>('sum', null, (async function * () { yield Uint8Array.of(1, 2, 3) })()), { total: 3, sum: 6 })
    assert.is(writes.length, 2, 'a one-chunk body: header, DATA and END in one write')
    assert.equal(await c.uploadUnchecked<any>('sum', null, (async function * () { yield Uint8Array.of(1); yield Uint8Array.of(2); yield Uint8Array.of(3) })()), { total: 3, sum: 6 })
    assert.is(writes.length, 5, 'three chunks: header with the first, the second alone, the third with END')
  } finally {
    ctx.client.dialProtocol = dial
    await c.close()
  }
})

test('the server grants credit in batches: a small upload is answered by its RESULT alone, a long one gets CREDITs of half the window', async () => {
  const stream = await ctx.client.dialProtocol(ctx.addr, RPC_PROTOCOL)
  const framed = new FramedStream(stream)
  try {
    const header = { kind: FrameKind.Header as const, header: { method: 'sum', params: null, timeoutMs: 10_000 } }
    await framed.writeMany([header, { kind: FrameKind.Data, bytes: Uint8Array.of(7) }, { kind: FrameKind.End }])
    const first = await framed.read()
    assert.is(first?.kind, FrameKind.Result, 'no CREDIT before the RESULT of a one-frame upload')
    // a whole window of DATA, then END: CREDIT frames grant CREDIT_BATCH_FRAMES each
    await framed.writeMany([header, ...Array.from({ length: DATA_WINDOW_FRAMES }, () => ({ kind: FrameKind.Data as const, bytes: Uint8Array.of(1) })), { kind: FrameKind.End }])
    const credits: number[] = []
    let last
    while ((last = await framed.read())?.kind === FrameKind.Credit) credits.push((last as { frames: number }).frames)
    assert.is(last?.kind, FrameKind.Result)
    assert.equal(credits, Array(DATA_WINDOW_FRAMES / CREDIT_BATCH_FRAMES).fill(CREDIT_BATCH_FRAMES))
    assert.ok(CREDIT_BATCH_FRAMES > 1 && CREDIT_BATCH_FRAMES < DATA_WINDOW_FRAMES)
  } finally {
    await stream.close()
  }
})

test('a download streams its body and an error mid-stream reaches the caller typed', async () => {
  const c = new RpcClient({ host: ctx.client, target: ctx.addr })
  const size = 20 * 1024 * 1024 + 13
  const { result, body } = await c.downloadUnchecked<any>('gen', { size })
  assert.is(result.size, size)
  let got = 0
  let ok = true
  for await (const chunk of body) {
    for (let i = 0; i < chunk.length; i += 997) if (chunk[i] !== ((got + i) & 0xff)) ok = false
    got += chunk.length
  }
  assert.is(got, size)
  assert.ok(ok)
  const failing = await c.downloadUnchecked<any>('gen', { size, failAt: 4 * 1024 * 1024 })
  try {
    for await (const _ of failing.body) { /* drain */ }
    assert.unreachable()
  } catch (err: any) {
    assert.is(err.name, 'InvalidArgument')
  }
  assert.is((await c.callUnchecked<any>('echo', { text: 'still here' })).text, 'still here')
  await c.close()
})

test('garbage and oversized frames are refused with a typed error and the server keeps serving', async () => {
  const raw = lpStream(await ctx.client.dialProtocol(ctx.addr, RPC_PROTOCOL))
  await raw.write(new Uint8Array([FrameKind.Header, 0xff, 0xfe, 0x00]))
  const framed = new FramedStream(raw.unwrap())
  const reply = await framed.read()
  assert.is(reply?.kind, FrameKind.Error)
  assert.is((reply as any).error.name, 'MalformedFrame')

  const s2 = await ctx.client.dialProtocol(ctx.addr, RPC_PROTOCOL)
  const lp2 = lpStream(s2, { maxDataLength: FRAME_BYTES_MAX * 4 })
  await lp2.write(new Uint8Array(FRAME_BYTES_MAX + 10))
  const reply2 = await new FramedStream(lp2.unwrap()).read()
  assert.is(reply2?.kind, FrameKind.Error)
  assert.is((reply2 as any).error.name, 'FrameTooLarge')

  const c = new RpcClient({ host: ctx.client, target: ctx.addr })
  assert.is((await c.callUnchecked<any>('echo', { text: 'alive' })).text, 'alive')
  await c.close()
})

test('a call past its deadline fails with DeadlineExceeded, a caller abort with Aborted, and the handler sees its signal fire', async () => {
  const c = new RpcClient({ host: ctx.client, target: ctx.addr })
  let started = Date.now()
  try {
    await c.callUnchecked('hang', null, { timeoutMs: 300 })
    assert.unreachable()
  } catch (err: any) {
    assert.is(err.name, 'DeadlineExceeded')
  }
  assert.ok(Date.now() - started < 2000)
  const controller = new AbortController()
  setTimeout(() => { controller.abort() }, 200)
  started = Date.now()
  try {
    await c.callUnchecked('hang', null, { signal: controller.signal })
    assert.unreachable()
  } catch (err: any) {
    assert.is(err.name, 'Aborted')
  }
  assert.ok(Date.now() - started < 2000)
  const deadline = Date.now() + 2000
  while (ctx.calls.filter((x) => x === 'hang:aborted').length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
  assert.is(ctx.calls.filter((x) => x === 'hang:aborted').length, 2, 'both handlers were told to stop')
  assert.is((await c.callUnchecked<any>('echo', { text: 'next' })).text, 'next')
  await c.close()
})

test('at its deadline a handler\'s NoQuorum reaches the caller; an upload\'s handler has the caller\'s idle deadline once its bytes are in', async () => {
  const c = new RpcClient({ host: ctx.client, target: ctx.addr })
  // an answer after the caller's own deadline would be its DeadlineExceeded instead (the server
  // stops the handler 300 ms sooner)
  const [unary, upload] = await Promise.all([
    c.callUnchecked('verdict', null, { timeoutMs: 3000 }).then(() => undefined, (err: Error) => err),
    c.uploadUnchecked('commit', null, slowly(3, 0), { timeoutMs: 3000 }).then(() => undefined, (err: Error) => err)
  ])
  assert.is(unary?.name, 'NoQuorum', String(unary))
  assert.is(upload?.name, 'NoQuorum', String(upload))

  // the idle deadline bounds only the wait for the answer: a slow but steady upload runs past it
  const started = Date.now()
  const r = await c.uploadUnchecked<{ total: number }>('sum', null, slowly(6, 300), { timeoutMs: 1000 })
  assert.is(r.total, 6 * 1024)
  assert.ok(Date.now() - started >= 1500)
  await c.close()
})

async function * slowly (chunks: number, gapMs: number): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < chunks; i++) {
    if (i > 0) await new Promise((resolve) => setTimeout(resolve, gapMs))
    yield new Uint8Array(1024).fill(i)
  }
}

test('a node whose gater closes the connection gives NodeUnreachable within the deadline, not a hang', async () => {
  const gated = await createHost({
    privateKey: await generateKeyPair('Ed25519'),
    listen: ['/ip4/127.0.0.1/tcp/0'],
    connectionGater: { denyInboundEncryptedConnection: () => true }
  })
  const rpc = new RpcServer({ host: gated, authorize: async () => {} })
  rpc.register({ name: 'echo', action: 'x', kind: 'unary', params: (r) => r, handle: async ({ params }) => params })
  await rpc.start()
  try {
    const started = Date.now()
    const c = new RpcClient({ host: ctx.stranger, target: gated.getMultiaddrs()[0], dialTimeoutMs: 5000 })
    try {
      await c.callUnchecked('echo', { text: 'x' }, { timeoutMs: 5000 })
      assert.unreachable()
    } catch (err: any) {
      assert.is(err.name, 'NodeUnreachable')
      assert.match(err.message, /may not be allowed/)
    }
    assert.ok(Date.now() - started < 7000)
  } finally {
    await rpc.stop()
    await gated.stop()
  }
})

test('a node that cannot be reached gives NodeUnreachable within the dial deadline', async () => {
  const started = Date.now()
  const c = new RpcClient({ host: ctx.client, target: ctx.addr.decapsulate('/tcp').encapsulate('/tcp/1'), dialTimeoutMs: 3000 })
  try {
    await c.callUnchecked('echo', { text: 'x' })
    assert.unreachable()
  } catch (err: any) {
    assert.is(err.name, 'NodeUnreachable')
  }
  assert.ok(Date.now() - started < 5000)
})

/** What a recording interceptor saw: `${name}.before` / `${name}.after`, the call as it was then, the outcome. */
interface Seen { at: string, call: RpcCallInfo, outcome?: RpcCallOutcome }

/** An interceptor that records every call it sees into `seen`; `extra` replaces its hooks. */
function recorder (name: string, seen: Seen[], extra: Partial<RpcInterceptor> = {}): RpcInterceptor {
  return {
    name,
    before: (call) => { seen.push({ at: `${name}.before`, call: { ...call } }) },
    after: (call, outcome) => { seen.push({ at: `${name}.after`, call: { ...call }, outcome }) },
    ...extra
  }
}

/** Waits until `done()` holds, for at most `ms`: afters run once the answer is written, maybe after the caller has it. */
async function until (done: () => boolean, ms = 3000): Promise<void> {
  const deadline = Date.now() + ms
  while (!done() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10))
}

/**
 * Runs `fn` against a server of its own with `init`'s interceptors (authorize: only ctx.client) and
 * methods that record their runs in `handled`: echo, slow (100 ms), fail, hang, sum (upload), gen (download).
 */
async function withIntercepted (init: Omit<RpcServerInit, 'host'>, fn: (c: RpcClient, handled: string[], rpc: RpcServer) => Promise<void>): Promise<void> {
  const host = await createHost({ privateKey: await generateKeyPair('Ed25519'), listen: ['/ip4/127.0.0.1/tcp/0'] })
  const handled: string[] = []
  const rpc = new RpcServer({ host, ...init })
  const map = (raw: unknown): any => {
    if (typeof raw !== 'object' || raw == null) throw new InvalidArgumentError('params must be a map')
    return raw
  }
  rpc.register(
    { name: 'echo', action: 'test.read', kind: 'unary', params: map, handle: async ({ params }) => { handled.push('echo'); return { text: params.text } } },
    {
      name: 'slow',
      action: 'test.read',
      kind: 'unary',
      params: map,
      handle: async () => { handled.push('slow'); await new Promise((resolve) => setTimeout(resolve, 100)); return null }
    },
    { name: 'fail', action: 'test.read', kind: 'unary', params: map, handle: async () => { handled.push('fail'); throw new InvalidArgumentError('failing on purpose') } },
    {
      name: 'hang',
      action: 'test.read',
      kind: 'unary',
      params: map,
      handle: async ({ signal }) => {
        handled.push('hang')
        await new Promise((resolve) => { signal.addEventListener('abort', resolve, { once: true }) })
        throw signal.reason
      }
    },
    {
      name: 'sum',
      action: 'test.write',
      kind: 'upload',
      params: map,
      handle: async ({ body }) => {
        handled.push('sum')
        let total = 0
        for await (const chunk of body) total += chunk.byteLength
        return { total }
      }
    },
    {
      name: 'gen',
      action: 'test.read',
      kind: 'download',
      params: map,
      handle: async ({ params }) => {
        handled.push('gen')
        return { result: { size: params.size }, body: (async function * () { for (let sent = 0; sent < params.size; sent += 1024 * 1024) yield new Uint8Array(Math.min(1024 * 1024, params.size - sent)) })() }
      }
    }
  )
  await rpc.start()
  const c = new RpcClient({ host: ctx.client, target: host.getMultiaddrs()[0] })
  try {
    await fn(c, handled, rpc)
  } finally {
    await c.close()
    await rpc.stop()
    await host.stop()
  }
}

const onlyClient: RpcServerInit['authorize'] = async (peer, action) => {
  if (peer !== ctx.client.peerId.toString()) throw new PermissionDeniedError(`peer ${peer} may not ${action}`, { peer, action })
}

test('interceptors see a unary call, an upload and a download: befores in order, afters in reverse, with outcome, duration and bytes', async () => {
  const seen: Seen[] = []
  await withIntercepted({ authorize: onlyClient, interceptors: [recorder('a', seen), recorder('b', seen)] }, async (c, handled) => {
    const params = { text: 'hi' }
    assert.equal(await c.callUnchecked('echo', params, { timeoutMs: 5000 }), { text: 'hi' })
    await until(() => seen.length === 4)
    assert.equal(seen.map((s) => s.at), ['a.before', 'b.before', 'b.after', 'a.after'])
    assert.equal(handled, ['echo'])
    const [before, , after] = seen
    assert.equal(before.call, { peer: ctx.client.peerId.toString(), method: 'echo', action: 'test.read', kind: 'unary', params, startedAtMs: before.call.startedAtMs })
    assert.ok(Math.abs(before.call.startedAtMs - Date.now()) < 5000)
    const headerBytes = encodeFrame({ kind: FrameKind.Header, header: { method: 'echo', params, timeoutMs: 5000 } })[1].byteLength
    const resultBytes = encodeFrame({ kind: FrameKind.Result, value: { text: 'hi' } })[1].byteLength
    assert.equal(after.outcome, { ok: true, durationMs: after.outcome?.durationMs, bytesIn: headerBytes, bytesOut: resultBytes })
    assert.ok(after.outcome!.durationMs >= 0 && after.outcome!.durationMs < 2000)

    seen.length = 0
    await c.callUnchecked('slow', {})
    await until(() => seen.length === 4)
    assert.ok(seen[3].outcome!.durationMs >= 95, `a 100 ms handler took ${seen[3].outcome?.durationMs} ms`)

    seen.length = 0
    const uploaded = 5 * 1024 * 1024 + 3
    const r = await c.uploadUnchecked<{ total: number }>('sum', {}, (async function * () { yield new Uint8Array(uploaded - 3); yield new Uint8Array(3) })())
    assert.is(r.total, uploaded)
    await until(() => seen.length === 4)
    assert.equal(seen.map((s) => s.at), ['a.before', 'b.before', 'b.after', 'a.after'])
    const up = seen[3]
    assert.is(up.call.kind, 'upload')
    assert.is(up.outcome?.ok, true)
    // the DATA payloads plus the encoded header (method, params, deadlines)
    assert.ok(up.outcome!.bytesIn > uploaded && up.outcome!.bytesIn < uploaded + 64, String(up.outcome?.bytesIn))
    assert.is(up.outcome?.bytesOut, encodeFrame({ kind: FrameKind.Result, value: { total: uploaded } })[1].byteLength)

    seen.length = 0
    const size = 3 * 1024 * 1024 + 11
    const { result, body } = await c.downloadUnchecked<{ size: number }>('gen', { size })
    let got = 0
    for await (const chunk of body) got += chunk.byteLength
    assert.is(got, size)
    await until(() => seen.length === 4)
    const down = seen[3]
    assert.is(down.call.kind, 'download')
    assert.is(down.outcome?.ok, true)
    assert.ok(down.outcome!.bytesIn > 0 && down.outcome!.bytesIn < 64)
    assert.is(down.outcome?.bytesOut, size + encodeFrame({ kind: FrameKind.Result, value: result })[1].byteLength)
  })
})

test('a before that throws refuses the call with its error: no later before and no handler run, the afters of those reached do', async () => {
  const seen: Seen[] = []
  const limiter = recorder('limit', seen, {
    before: (call) => {
      seen.push({ at: 'limit.before', call: { ...call } })
      if ((call.params as any).text === 'too much') throw new UnavailableError('rate limited', { peer: call.peer })
    }
  })
  await withIntercepted({ authorize: onlyClient, interceptors: [recorder('a', seen), limiter, recorder('c', seen)] }, async (c, handled) => {
    try {
      await c.callUnchecked('echo', { text: 'too much' })
      assert.unreachable('the limiter refuses')
    } catch (err: any) {
      assert.is(err.name, 'Unavailable')
      assert.is(err.details.peer, ctx.client.peerId.toString())
    }
    await until(() => seen.length === 4)
    assert.equal(seen.map((s) => s.at), ['a.before', 'limit.before', 'limit.after', 'a.after'])
    assert.equal(handled, [])
    assert.is(seen[3].outcome?.ok, false)
    assert.equal(seen[3].outcome?.error, { name: 'Unavailable', message: 'rate limited' })
    assert.is(seen[3].outcome?.bytesOut, 0)
    // the stream is at a call boundary: the next call passes
    assert.equal(await c.callUnchecked('echo', { text: 'fine' }), { text: 'fine' })
    assert.equal(handled, ['echo'])
  })
})

test('authorization is an interceptor: a denied peer gets PermissionDenied before its params are parsed; one placed ahead of it sees the refusal', async () => {
  const seen: Seen[] = []
  // its own server: the stranger must reach it too
  const host = await createHost({ privateKey: await generateKeyPair('Ed25519'), listen: ['/ip4/127.0.0.1/tcp/0'] })
  const rpc = new RpcServer({ host, interceptors: [recorder('audit', seen), authorization(onlyClient), recorder('after-auth', seen)] })
  const handled: string[] = []
  rpc.register({
    name: 'echo',
    action: 'test.read',
    kind: 'unary',
    params: (raw) => { handled.push('params'); if (typeof raw !== 'object' || raw == null) throw new InvalidArgumentError('params must be a map'); return raw },
    handle: async ({ params }) => { handled.push('echo'); return params }
  })
  await rpc.start()
  const stranger = new RpcClient({ host: ctx.stranger, target: host.getMultiaddrs()[0] })
  const client = new RpcClient({ host: ctx.client, target: host.getMultiaddrs()[0] })
  try {
    seen.length = 0
    for (const params of [{ text: 'x' }, 7]) {
      try {
        await stranger.callUnchecked('echo', params)
        assert.unreachable('a stranger must be refused')
      } catch (err: any) {
        assert.is(err.name, 'PermissionDenied', 'denied first, whatever the params')
      }
    }
    await until(() => seen.length === 4)
    assert.equal(seen.map((s) => s.at), ['audit.before', 'audit.after', 'audit.before', 'audit.after'])
    assert.is(seen[1].outcome?.error?.name, 'PermissionDenied')
    assert.is(seen[1].call.params, undefined, 'unparsed')
    assert.equal(handled, [], 'neither params nor handler ran')

    seen.length = 0
    assert.equal(await client.callUnchecked('echo', { text: 'ok' }), { text: 'ok' })
    await until(() => seen.length === 4)
    assert.equal(seen.map((s) => s.at), ['audit.before', 'after-auth.before', 'after-auth.after', 'audit.after'])
    assert.is(seen[0].call.params, undefined, 'ahead of authorization: not parsed yet')
    assert.equal(seen[1].call.params, { text: 'ok' }, 'after authorization: validated')
    assert.equal(seen[3].call.params, { text: 'ok' })
  } finally {
    await stranger.close()
    await client.close()
    await rpc.stop()
    await host.stop()
  }
})

test('after runs for a handler that throws, a call past its deadline and a caller who gives up', async () => {
  const seen: Seen[] = []
  await withIntercepted({ authorize: onlyClient, interceptors: [recorder('a', seen)] }, async (c, handled) => {
    const outcomes = async (call: Promise<unknown>): Promise<[string, RpcCallOutcome | undefined]> => {
      seen.length = 0
      const name = await call.then(() => 'ok', (err: Error) => err.name)
      await until(() => seen.length === 2)
      return [name, seen[1]?.outcome]
    }
    const [failed, onFail] = await outcomes(c.callUnchecked('fail', {}))
    assert.is(failed, 'InvalidArgument')
    assert.equal(onFail?.error, { name: 'InvalidArgument', message: 'failing on purpose' })
    assert.is(onFail?.ok, false)

    const [late, onDeadline] = await outcomes(c.callUnchecked('hang', {}, { timeoutMs: 300 }))
    assert.is(late, 'DeadlineExceeded')
    assert.is(onDeadline?.error?.name, 'DeadlineExceeded')
    assert.ok(onDeadline!.durationMs >= 200 && onDeadline!.durationMs < 2000, String(onDeadline?.durationMs))

    const controller = new AbortController()
    setTimeout(() => { controller.abort() }, 200)
    const [gone, onAbort] = await outcomes(c.callUnchecked('hang', {}, { signal: controller.signal }))
    assert.is(gone, 'Aborted')
    assert.is(onAbort?.error?.name, 'Aborted')
    assert.equal(handled, ['fail', 'hang', 'hang'])
  })
})

test('an after that throws or rejects changes nothing: the call keeps its result and the other afters run', async () => {
  const seen: Seen[] = []
  const throwing = recorder('throws', seen, { after: () => { seen.push({ at: 'throws.after' } as Seen); throw new Error('audit log is down') } })
  // eslint-disable-next-line @typescript-eslint/no-misused-promises -- an async after, on purpose: its rejection must change nothing
  const rejecting = recorder('rejects', seen, { after: async () => { seen.push({ at: 'rejects.after' } as Seen); throw new Error('metrics are down') } })
  await withIntercepted({ authorize: onlyClient, interceptors: [recorder('a', seen), throwing, rejecting] }, async (c) => {
    for (let i = 0; i < 3; i++) assert.equal(await c.callUnchecked('echo', { text: String(i) }), { text: String(i) })
    await until(() => seen.filter((s) => s.at === 'a.after').length === 3)
    assert.equal(seen.slice(0, 6).map((s) => s.at), ['a.before', 'throws.before', 'rejects.before', 'rejects.after', 'throws.after', 'a.after'])
    assert.is(seen[5].outcome?.ok, true)
    assert.is(seen.filter((s) => s.at === 'a.after').length, 3)
  })
})

test('a server authorizes exactly once, and its interceptors are fixed when it starts', async () => {
  const none = new RpcServer({ host: ctx.server })
  try {
    await none.start()
    assert.unreachable('a server without authorization must not start')
  } catch (err: any) {
    assert.match(err.message, /authorization/)
  }
  const twice = new RpcServer({ host: ctx.server, authorize: async () => {}, interceptors: [authorization(async () => {})] })
  try {
    await twice.start()
    assert.unreachable('two authorizations')
  } catch (err: any) {
    assert.match(err.message, /authorizes once/)
  }
  assert.throws(() => { ctx.rpc.use(recorder('late', [])) }, /fixed/)
})

test.run()
