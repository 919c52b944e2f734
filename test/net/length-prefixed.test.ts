import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { randomBytes } from 'node:crypto'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { lpStream } from '@libp2p/utils'
import type { Stream } from '@libp2p/interface'
import { LengthPrefixed, varintBytes } from '@dfs/api'
import { createHost, type Host } from '../../src/net/host.js'
import { Cleanup, waitFor } from '../membership/helpers.js'

/**
 * LengthPrefixed, the framing of the RPC and Raft streams, over real libp2p streams (TCP, Noise,
 * Yamux on 127.0.0.1), against @libp2p/utils' lpStream on the other side: the same bytes on the wire
 * both ways, messages cut out of chunks whatever their boundaries, and its limits.
 */
const test = suite('net/length-prefixed: varint-framed messages over real libp2p streams')

const PROTOCOL = '/dfs-test/lp/1.0.0'
const cleanup = new Cleanup()
let server: Host
let client: Host
/** Streams the server accepted, in order. */
const accepted: Stream[] = []

test.before(async () => {
  const host = async (listen: boolean): Promise<Host> => {
    const h = await createHost({ privateKey: await generateKeyPair('Ed25519'), listen: listen ? ['/ip4/127.0.0.1/tcp/0'] : [] })
    cleanup.add(async () => { await h.stop() })
    return h
  }
  server = await host(true)
  client = await host(false)
  await server.handle(PROTOCOL, (stream) => { accepted.push(stream) })
})
test.after(async () => { await cleanup.run() })

/** A new stream: the client's end and the server's. */
async function pair (): Promise<{ local: Stream, remote: Stream }> {
  const n = accepted.length
  const local = await client.dialProtocol(server.getMultiaddrs()[0], PROTOCOL, { signal: AbortSignal.timeout(10_000) })
  await waitFor('the server accepts the stream', () => accepted.length > n)
  return { local, remote: accepted[n] }
}

/** The error `p` rejects with (fails the test if it resolves). */
async function rejection (p: Promise<unknown>): Promise<Error> {
  try {
    await p
  } catch (err) {
    return err as Error
  }
  throw new assert.Assertion({ message: 'expected a rejection', generated: false, operator: 'rejects', expects: 'rejection', actual: 'resolved' })
}

const SIZES = [0, 1, 127, 128, 300, 16_383, 16_384, 70_000, 1024 * 1024]
const LIMIT = 1024 * 1024 + 16

test('messages of every varint width arrive whole and in order, written by lpStream and read by LengthPrefixed', async () => {
  const { local, remote } = await pair()
  const reader = new LengthPrefixed(remote, { maxDataLength: LIMIT })
  const writer = lpStream(local, { maxDataLength: LIMIT })
  const sent = SIZES.map((n) => randomBytes(n))
  // some in one write, some one by one
  await writer.writeV(sent.slice(0, 5))
  for (const m of sent.slice(5)) await writer.write(m)
  await local.close()
  for (const m of sent) {
    const got = await reader.read()
    assert.ok(got !== null, `message of ${m.byteLength} bytes`)
    assert.equal(got.byteLength, m.byteLength)
    assert.ok(Buffer.from(got.subarray()).equals(m), `the ${m.byteLength} bytes are the ones sent`)
  }
  assert.is(await reader.read(), null, 'the end of the stream')
  assert.is(await reader.read(), null, 'and again')
})

test('messages written by LengthPrefixed are read by lpStream (the same bytes on the wire)', async () => {
  const { local, remote } = await pair()
  const writer = new LengthPrefixed(local, { maxDataLength: LIMIT })
  const reader = lpStream(remote, { maxDataLength: LIMIT })
  const sent = SIZES.map((n) => randomBytes(n))
  await writer.writeV(sent.slice(0, 4))
  for (const m of sent.slice(4)) await writer.write(m)
  for (const m of sent) {
    const got = await reader.read()
    assert.ok(Buffer.from(got.subarray()).equals(m), `the ${m.byteLength} bytes are the ones sent`)
  }
})

test('a message whose prefix and bytes arrive a byte at a time, across many chunks, is one message', async () => {
  const { local, remote } = await pair()
  const reader = new LengthPrefixed(remote, { maxDataLength: LIMIT })
  const a = randomBytes(200)
  const b = randomBytes(5)
  // 200 needs a 2-byte prefix: it is split across chunks too
  const wire = Buffer.concat([Uint8Array.of(0xc8, 0x01), a, Uint8Array.of(5), b])
  const reading = reader.read()
  for (let i = 0; i < wire.byteLength; i++) {
    local.send(wire.subarray(i, i + 1))
    // now and then a turn of the event loop, so the reader sees the bytes trickle in
    if (i % 37 === 0) await new Promise((resolve) => setImmediate(resolve))
  }
  const first = await reading
  assert.ok(first !== null && Buffer.from(first.subarray()).equals(a))
  const second = await reader.read()
  assert.ok(second !== null && Buffer.from(second.subarray()).equals(b))
  await local.close()
  assert.is(await reader.read(), null)
})

test('a length over the limit is FrameTooLarge, and stays so', async () => {
  const { local, remote } = await pair()
  const reader = new LengthPrefixed(remote, { maxDataLength: 1000 })
  await lpStream(local).write(randomBytes(1001))
  assert.is((await rejection(reader.read())).name, 'FrameTooLarge')
  assert.is((await rejection(reader.read())).name, 'FrameTooLarge')
})

test('a length prefix longer than the limit needs is FrameTooLarge, before its end arrives', async () => {
  const { local, remote } = await pair()
  assert.is(varintBytes(1000), 2)
  const reader = new LengthPrefixed(remote, { maxDataLength: 1000 })
  // 0x80 0x80: a varint still going on after the 2 bytes 1000 takes
  local.send(Uint8Array.of(0x80, 0x80))
  assert.is((await rejection(reader.read())).name, 'FrameTooLarge')
})

test('a peer that sends more than the buffer allows is cut off: reads fail with MalformedFrame and the stream is aborted', async () => {
  const { local, remote } = await pair()
  const reader = new LengthPrefixed(remote, { maxDataLength: 64 * 1024, maxBufferSize: 100 * 1024 })
  // 40 KiB messages, nobody reading: the third goes past 100 KiB
  const writer = lpStream(local, { maxDataLength: 64 * 1024 })
  for (let i = 0; i < 3; i++) await writer.write(randomBytes(40 * 1024))
  await waitFor('the reader aborts the stream', () => remote.status !== 'open')
  assert.is((await rejection(reader.read())).name, 'MalformedFrame')
  await waitFor('the writer sees its stream reset', () => local.status !== 'open')
})

test('a read waiting for bytes ends with the reason of its signal; the next read still gets the message', async () => {
  const { local, remote } = await pair()
  const reader = new LengthPrefixed(remote, { maxDataLength: LIMIT })
  const controller = new AbortController()
  const waiting = reader.read({ signal: controller.signal })
  const reason = Object.assign(new Error('gave up'), { name: 'DeadlineExceeded' })
  controller.abort(reason)
  assert.is(await rejection(waiting), reason)
  assert.is(await rejection(reader.read({ signal: controller.signal })), reason, 'an aborted signal refuses at once')
  await lpStream(local).write(Uint8Array.of(1, 2, 3))
  const got = await reader.read()
  assert.equal(got !== null ? [...got.subarray()] : null, [1, 2, 3])
})

test('only one read waits at a time', async () => {
  const { local, remote } = await pair()
  const reader = new LengthPrefixed(remote, { maxDataLength: LIMIT })
  const first = reader.read()
  assert.match((await rejection(reader.read())).message, /already waiting/)
  await lpStream(local).write(Uint8Array.of(7))
  const got = await first
  assert.equal(got !== null ? [...got.subarray()] : null, [7])
})

test('a stream the remote resets fails the waiting read with the reset; a message cut off by a clean end is dropped', async () => {
  {
    const { local, remote } = await pair()
    const reader = new LengthPrefixed(remote, { maxDataLength: LIMIT })
    const waiting = reader.read()
    local.abort(new Error('gone'))
    assert.is((await rejection(waiting)).name, 'StreamResetError')
    assert.is((await rejection(reader.read())).name, 'StreamResetError', 'and every read after')
  }
  {
    const { local, remote } = await pair()
    const reader = new LengthPrefixed(remote, { maxDataLength: LIMIT })
    // a prefix announcing 10 bytes, then 3 of them, then the end
    local.send(Uint8Array.of(10, 1, 2, 3))
    await local.close()
    assert.is(await reader.read(), null)
  }
})

test.run()
