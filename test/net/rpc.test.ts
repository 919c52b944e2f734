import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { lpStream } from '@libp2p/utils'
import { InvalidArgumentError, NoQuorumError, PermissionDeniedError } from '@dfs/api'
import { createHost, type Host } from '../../src/net/host.js'
import { RpcServer } from '../../src/net/rpc/server.js'
import { RpcClient } from '../../src/net/rpc/client.js'
import { CREDIT_BATCH_FRAMES, DATA_WINDOW_FRAMES, FRAME_BYTES_MAX, RPC_PROTOCOL } from '../../src/net/constants.js'
import { FramedStream, FrameKind } from '../../src/net/rpc/frames.js'
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
  const r = await c.call<any>('echo', { text: 'hi', bytes })
  assert.is(r.text, 'hi')
  assert.ok(r.bytes instanceof Uint8Array)
  assert.equal([...r.bytes], [...bytes])
  assert.is(r.peer, ctx.client.peerId.toString())
  // the stream is reused for the next call
  for (let i = 0; i < 20; i++) assert.is((await c.call<any>('echo', { text: String(i) })).text, String(i))
  await c.close()
})

test('typed errors cross the wire by name, and the call is authorized first', async () => {
  const c = new RpcClient({ host: ctx.stranger, target: ctx.addr })
  try {
    await c.call('echo', { text: 'x' })
    assert.unreachable('a stranger must be refused')
  } catch (err: any) {
    assert.is(err.name, 'PermissionDenied')
    assert.is(err.details.action, 'test.read')
  }
  const ok = new RpcClient({ host: ctx.client, target: ctx.addr })
  try {
    await ok.call('nope', {})
    assert.unreachable()
  } catch (err: any) {
    assert.is(err.name, 'UnknownMethod')
  }
  try {
    await ok.call('echo', 7)
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
  const r = await c.upload<any>('sum', null, body())
  assert.is(r.total, sent)
  assert.is(r.sum, expected)
  // and the stream still serves a unary call afterwards
  assert.is((await c.call<any>('echo', { text: 'after' })).text, 'after')
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
    assert.equal(await c.upload<any>('sum', null, (async function * () {})()), { total: 0, sum: 0 })
    assert.is(writes.length, 1)
    assert.equal(await c.upload<any>('sum', null, (async function * () { yield Uint8Array.of(1, 2, 3) })()), { total: 3, sum: 6 })
    assert.is(writes.length, 2, 'a one-chunk body: header, DATA and END in one write')
    assert.equal(await c.upload<any>('sum', null, (async function * () { yield Uint8Array.of(1); yield Uint8Array.of(2); yield Uint8Array.of(3) })()), { total: 3, sum: 6 })
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
  const { result, body } = await c.download<any>('gen', { size })
  assert.is(result.size, size)
  let got = 0
  let ok = true
  for await (const chunk of body) {
    for (let i = 0; i < chunk.length; i += 997) if (chunk[i] !== ((got + i) & 0xff)) ok = false
    got += chunk.length
  }
  assert.is(got, size)
  assert.ok(ok)
  const failing = await c.download<any>('gen', { size, failAt: 4 * 1024 * 1024 })
  try {
    for await (const _ of failing.body) { /* drain */ }
    assert.unreachable()
  } catch (err: any) {
    assert.is(err.name, 'InvalidArgument')
  }
  assert.is((await c.call<any>('echo', { text: 'still here' })).text, 'still here')
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
  assert.is((await c.call<any>('echo', { text: 'alive' })).text, 'alive')
  await c.close()
})

test('a call past its deadline fails with DeadlineExceeded, a caller abort with Aborted, and the handler sees its signal fire', async () => {
  const c = new RpcClient({ host: ctx.client, target: ctx.addr })
  let started = Date.now()
  try {
    await c.call('hang', null, { timeoutMs: 300 })
    assert.unreachable()
  } catch (err: any) {
    assert.is(err.name, 'DeadlineExceeded')
  }
  assert.ok(Date.now() - started < 2000)
  const controller = new AbortController()
  setTimeout(() => { controller.abort() }, 200)
  started = Date.now()
  try {
    await c.call('hang', null, { signal: controller.signal })
    assert.unreachable()
  } catch (err: any) {
    assert.is(err.name, 'Aborted')
  }
  assert.ok(Date.now() - started < 2000)
  const deadline = Date.now() + 2000
  while (ctx.calls.filter((x) => x === 'hang:aborted').length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
  assert.is(ctx.calls.filter((x) => x === 'hang:aborted').length, 2, 'both handlers were told to stop')
  assert.is((await c.call<any>('echo', { text: 'next' })).text, 'next')
  await c.close()
})

test('at its deadline a handler\'s NoQuorum reaches the caller; an upload\'s handler has the caller\'s idle deadline once its bytes are in', async () => {
  const c = new RpcClient({ host: ctx.client, target: ctx.addr })
  // an answer after the caller's own deadline would be its DeadlineExceeded instead (the server
  // stops the handler 300 ms sooner)
  const [unary, upload] = await Promise.all([
    c.call('verdict', null, { timeoutMs: 3000 }).then(() => undefined, (err: Error) => err),
    c.upload('commit', null, slowly(3, 0), { timeoutMs: 3000 }).then(() => undefined, (err: Error) => err)
  ])
  assert.is(unary?.name, 'NoQuorum', String(unary))
  assert.is(upload?.name, 'NoQuorum', String(upload))

  // the idle deadline bounds only the wait for the answer: a slow but steady upload runs past it
  const started = Date.now()
  const r = await c.upload<{ total: number }>('sum', null, slowly(6, 300), { timeoutMs: 1000 })
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
      await c.call('echo', { text: 'x' }, { timeoutMs: 5000 })
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
    await c.call('echo', { text: 'x' })
    assert.unreachable()
  } catch (err: any) {
    assert.is(err.name, 'NodeUnreachable')
  }
  assert.ok(Date.now() - started < 5000)
})

test.run()
