import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { RpcCallOutcome } from '@dfs/api'
import { createHost, type Host } from '../../src/net/host.js'
import { RpcServer } from '../../src/net/rpc/server.js'
import { RpcClient } from '../../src/net/rpc/client.js'
import { CONNECTION_EARLY_STREAMS_MAX, CONNECTION_INBOUND_STREAMS_MAX, RPC_INBOUND_STREAMS_MAX, STREAM_WINDOW_BYTES_MAX } from '../../src/net/constants.js'
import { Cleanup, waitFor } from '../membership/helpers.js'

/**
 * Server-side bounds of the RPC layer over real libp2p: a streaming call whose caller stalls ends
 * with DeadlineExceeded after the server's own idle timeout, however long the caller's deadline.
 */
const test = suite('net/rpc limits: the server\'s idle timeout of streaming calls (real hosts on 127.0.0.1)')

const cleanup = new Cleanup()
test.after(async () => { await cleanup.run() })

const IDLE_MS = 400

async function host (listen: boolean): Promise<Host> {
  const h = await createHost({ privateKey: await generateKeyPair('Ed25519'), listen: listen ? ['/ip4/127.0.0.1/tcp/0'] : [] })
  cleanup.add(async () => { await h.stop() })
  return h
}

/** A server with `t.upload` (consumes its body) and `t.download` (20 × 64 KiB), recording each call's outcome. */
async function server (): Promise<{ node: Host, outcomes: Map<string, RpcCallOutcome>, seen: Map<string, string> }> {
  const node = await host(true)
  const outcomes = new Map<string, RpcCallOutcome>()
  /** What each handler saw end its work. */
  const seen = new Map<string, string>()
  const rpc = new RpcServer({
    host: node,
    authorize: async () => {},
    interceptors: [{ name: 'record', after: (call, outcome) => { outcomes.set(call.method, outcome) } }],
    peerIdleTimeoutMs: IDLE_MS
  })
  rpc.register({
    name: 't.upload',
    action: 'any',
    kind: 'upload',
    params: (raw: unknown) => raw,
    handle: async ({ body }) => {
      let bytes = 0
      try {
        for await (const chunk of body) bytes += chunk.byteLength
      } catch (err) {
        seen.set('t.upload', (err as Error).name)
        throw err
      }
      return { bytes }
    }
  }, {
    name: 't.slow-upload',
    action: 'any',
    kind: 'upload',
    params: (raw: unknown) => raw,
    handle: async ({ body }) => {
      // the handler takes its time between frames: that time is not the caller's idleness
      let bytes = 0
      for await (const chunk of body) {
        bytes += chunk.byteLength
        await new Promise((resolve) => setTimeout(resolve, IDLE_MS * 1.5))
      }
      return { bytes }
    }
  }, {
    name: 't.download',
    action: 'any',
    kind: 'download',
    params: (raw: unknown) => raw,
    handle: async () => ({
      result: { chunks: 20 },
      body: (async function * () {
        for (let i = 0; i < 20; i++) yield new Uint8Array(64 * 1024).fill(i)
      })()
    })
  })
  await rpc.start()
  cleanup.add(async () => { await rpc.stop() })
  return { node, outcomes, seen }
}

test('an upload whose caller stops sending ends with DeadlineExceeded after the server\'s idle timeout, not the caller\'s 60 s', async () => {
  const { node, outcomes, seen } = await server()
  const caller = await host(false)
  const client = new RpcClient({ host: caller, target: node.getMultiaddrs()[0] })
  let release = (): void => {}
  const stalled = new Promise<void>((resolve) => { release = resolve })
  cleanup.add(release)
  const started = Date.now()
  const call = client.uploadUnchecked('t.upload', {}, (async function * () {
    yield new Uint8Array(1000)
    yield new Uint8Array(1000) // the first chunk leaves (with the header) once the second is known
    await stalled // then the caller goes quiet, its connection open
  })(), { timeoutMs: 60_000 }).catch((err: Error) => err)
  await waitFor('the server to end the upload', () => outcomes.has('t.upload'), 20_000)
  const elapsed = Date.now() - started
  assert.is(outcomes.get('t.upload')?.ok, false)
  assert.is(outcomes.get('t.upload')?.error?.name, 'DeadlineExceeded')
  assert.is(seen.get('t.upload'), 'DeadlineExceeded', 'the handler\'s body ended with the typed error')
  assert.ok(elapsed < 15_000, `ended after ${elapsed} ms`)
  release()
  const answer = await call
  assert.ok(answer instanceof Error, 'the caller learns its call failed')
})

test('a download whose caller stops reading ends with DeadlineExceeded after the server\'s idle timeout', async () => {
  const { node, outcomes } = await server()
  const caller = await host(false)
  const client = new RpcClient({ host: caller, target: node.getMultiaddrs()[0] })
  const started = Date.now()
  const { result, body } = await client.downloadUnchecked('t.download', {}, { timeoutMs: 60_000 })
  assert.equal(result, { chunks: 20 })
  // the caller never reads `body`: it grants no credit after the first window
  await waitFor('the server to end the download', () => outcomes.has('t.download'), 20_000)
  assert.is(outcomes.get('t.download')?.error?.name, 'DeadlineExceeded')
  assert.ok(Date.now() - started < 15_000)
  await body.return(undefined)
})

test('only the caller\'s silence counts: a handler slower than the idle timeout between frames, and a caller that keeps sending for longer, both finish', async () => {
  const { node, outcomes } = await server()
  const caller = await host(false)
  const client = new RpcClient({ host: caller, target: node.getMultiaddrs()[0] })
  // each gap is shorter than the idle timeout, the whole upload several times longer
  const steady = await client.uploadUnchecked('t.upload', {}, (async function * () {
    for (let i = 0; i < 6; i++) {
      yield new Uint8Array(1000)
      await new Promise((resolve) => setTimeout(resolve, IDLE_MS / 2))
    }
  })(), { timeoutMs: 60_000 })
  assert.equal(steady, { bytes: 6000 })
  // the server's handler pauses 1.5 idle timeouts after each of three frames
  const slow = await client.uploadUnchecked('t.slow-upload', {}, (async function * () {
    for (let i = 0; i < 3; i++) yield new Uint8Array(1000)
  })(), { timeoutMs: 60_000 })
  assert.equal(slow, { bytes: 3000 })
  assert.is(outcomes.get('t.slow-upload')?.ok, true)
  // after such a pause (the idle timer fired meanwhile, unheeded) a caller that goes quiet is still cut off
  outcomes.delete('t.slow-upload')
  let release = (): void => {}
  const stalled = new Promise<void>((resolve) => { release = resolve })
  cleanup.add(release)
  const call = client.uploadUnchecked('t.slow-upload', {}, (async function * () {
    yield new Uint8Array(1000)
    yield new Uint8Array(1000)
    await stalled
  })(), { timeoutMs: 60_000 }).catch((err: Error) => err)
  await waitFor('the server to end the stalled upload', () => outcomes.has('t.slow-upload'), 20_000)
  assert.is(outcomes.get('t.slow-upload')?.error?.name, 'DeadlineExceeded')
  release()
  assert.ok(await call instanceof Error)
})

test('per-connection bounds: inbound streams, early streams and stream windows are configured limits', () => {
  assert.ok(CONNECTION_EARLY_STREAMS_MAX >= RPC_INBOUND_STREAMS_MAX, 'a client\'s burst of first calls fits in the early-stream allowance')
  assert.ok(CONNECTION_INBOUND_STREAMS_MAX >= RPC_INBOUND_STREAMS_MAX && CONNECTION_INBOUND_STREAMS_MAX <= 1000)
  assert.ok(STREAM_WINDOW_BYTES_MAX * CONNECTION_INBOUND_STREAMS_MAX <= 1024 * 1024 * 1024, 'at most 1 GiB buffered per connection')
})

test.run()
