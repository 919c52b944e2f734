import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { once } from 'node:events'
import { createServer, connect, Socket, type AddressInfo, type Server } from 'node:net'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { coalesceSocketWrites } from '../../src/net/coalesce-writes.js'
import { createHost } from '../../src/net/host.js'
import { RpcServer } from '../../src/net/rpc/server.js'
import { RpcClient } from '../../src/net/rpc/client.js'

const test = suite('net: socket writes of one tick leave in one writev')

interface Pair { server: Server, client: Socket, received: Buffer[], closed: Promise<unknown> }

/** A real TCP connection on loopback; everything the far end reads is collected. */
async function pair (): Promise<Pair> {
  const received: Buffer[] = []
  let closed: Promise<unknown> = Promise.resolve()
  const server = createServer((s) => {
    s.on('data', (d: Buffer) => { received.push(d) })
    closed = once(s, 'close')
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const client = connect((server.address() as AddressInfo).port, '127.0.0.1')
  await once(client, 'connect')
  return { server, client, received, get closed () { return closed } }
}

async function done (p: Pair, bytes: number): Promise<Buffer> {
  const deadline = Date.now() + 5000
  while (Buffer.concat(p.received).byteLength < bytes && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5))
  p.client.end()
  await p.closed
  p.server.close()
  return Buffer.concat(p.received)
}

/** Counts the socket's calls into its stream implementation (one per syscall batch). */
function countWrites (s: Socket): { write: number, writev: number, chunks: number } {
  const n = { write: 0, writev: 0, chunks: 0 }
  const w = s._write.bind(s)
  const wv = (s._writev as NonNullable<Socket['_writev']>).bind(s)
  s._write = (chunk, enc, cb) => { n.write++; n.chunks++; w(chunk, enc, cb) }
  s._writev = (chunks, cb) => { n.writev++; n.chunks += chunks.length; wv(chunks, cb) }
  return n
}

test('small writes of one tick reach the stream implementation as one writev, in order', async () => {
  const p = await pair()
  coalesceSocketWrites(p.client)
  coalesceSocketWrites(p.client) // idempotent
  const n = countWrites(p.client)
  const parts = Array.from({ length: 20 }, (_, i) => Buffer.from(`part ${i};`))
  for (const b of parts) assert.ok(p.client.write(b))
  await new Promise((resolve) => setImmediate(resolve))
  assert.equal(n, { write: 0, writev: 1, chunks: 20 })
  // the next tick's writes are a batch of their own
  p.client.write(Buffer.from('later;'))
  p.client.write(Buffer.from('again;'))
  await new Promise((resolve) => setImmediate(resolve))
  assert.is(n.writev, 2)
  const all = Buffer.concat([...parts, Buffer.from('later;again;')])
  assert.equal(await done(p, all.byteLength), all)
})

test('a bulk write flushes the batch and goes out at once, with backpressure as before', async () => {
  const p = await pair()
  coalesceSocketWrites(p.client)
  const n = countWrites(p.client)
  const small = Buffer.from('head;')
  const bulk = Buffer.alloc(4 * 1024 * 1024, 7)
  p.client.write(small)
  const ok = p.client.write(bulk)
  assert.is(ok, false, 'a write past the high-water mark still asks the writer to wait for drain')
  // the small write was handed on before the bulk one, not held back behind it
  assert.ok(n.write + n.writev >= 2, `writes ${JSON.stringify(n)}`)
  await once(p.client, 'drain')
  const got = await done(p, small.byteLength + bulk.byteLength)
  assert.equal(got.subarray(0, small.byteLength), small)
  assert.is(got.byteLength, small.byteLength + bulk.byteLength)
  assert.ok(got.subarray(small.byteLength).every((b) => b === 7))
})

test('libp2p hosts cork their TCP sockets under Noise, and calls work as before', async () => {
  const server = await createHost({ privateKey: await generateKeyPair('Ed25519'), listen: ['/ip4/127.0.0.1/tcp/0'] })
  const client = await createHost({ privateKey: await generateKeyPair('Ed25519') })
  const rpc = new RpcServer({ host: server, authorize: async () => {} })
  rpc.register({ name: 'echo', action: 'test.read', kind: 'unary', params: (raw) => raw, handle: async ({ params }) => params })
  await rpc.start()
  const cork = Socket.prototype.cork
  let corks = 0
  Socket.prototype.cork = function (this: Socket) { corks++; cork.call(this) }
  try {
    const c = new RpcClient({ host: client, target: server.getMultiaddrs()[0] })
    for (let i = 0; i < 5; i++) assert.equal(await c.callUnchecked('echo', { i }), { i })
    await c.close()
    assert.ok(corks > 0, 'the sockets coalesce their writes')
  } finally {
    Socket.prototype.cork = cork
    await rpc.stop()
    await Promise.all([server.stop(), client.stop()])
  }
})

test.run()
