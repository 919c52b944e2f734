import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { StreamState, YamuxStream } from '@chainsafe/libp2p-yamux/stream'
import { LengthPrefixedDecoder } from '@libp2p/utils'
import { Uint8ArrayList } from 'uint8arraylist'
import { createHost } from '../../src/net/host.js'
import { installQuietLengthPrefixedDecoder } from '../../src/net/lp-decoder.js'
import { installYamuxHalfWindowUpdates } from '../../src/net/yamux-window.js'
import { RpcServer } from '../../src/net/rpc/server.js'
import { RpcClient } from '../../src/net/rpc/client.js'

const test = suite('net: libp2p tuning (Yamux window updates, length-prefixed decoding)')

/** A position-weighted sum of every 4093rd byte of the stream, given a chunk at offset `at`. */
function sample (chunk: Uint8Array, at: number): number {
  let sum = 0
  for (let i = (4093 - (at % 4093)) % 4093; i < chunk.byteLength; i += 4093) sum = (sum + chunk[i] * (((at + i) / 4093) % 251 + 1)) % 65521
  return sum
}

interface WindowFields { recvWindowCapacity: number, state: StreamState }

/**
 * Counts the window updates established Yamux streams really send (those that hand receive
 * capacity back; a stream's first answer carries its ACK flag and is not counted).
 */
function countWindowUpdates (): { sent: number, restore: () => void } {
  installYamuxHalfWindowUpdates()
  const proto = YamuxStream.prototype as unknown as { sendWindowUpdate: (this: WindowFields) => void }
  const patched = proto.sendWindowUpdate
  const n = { sent: 0, restore: () => { proto.sendWindowUpdate = patched } }
  proto.sendWindowUpdate = function (this: WindowFields): void {
    const established = this.state === StreamState.Established
    const before = this.recvWindowCapacity
    patched.call(this)
    if (established && this.recvWindowCapacity > before) n.sent++
  }
  return n
}

test('small frames send no window update until half a window is used; bulk transfers still flow and get them', async () => {
  const server = await createHost({ privateKey: await generateKeyPair('Ed25519'), listen: ['/ip4/127.0.0.1/tcp/0'] })
  const client = await createHost({ privateKey: await generateKeyPair('Ed25519') })
  const rpc = new RpcServer({ host: server, authorize: async () => {} })
  rpc.register(
    { name: 'echo', action: 'test.read', kind: 'unary', params: (raw) => raw, handle: async ({ params }) => params },
    {
      name: 'sink',
      action: 'test.write',
      kind: 'upload',
      params: (raw) => raw,
      handle: async ({ body }) => {
        let bytes = 0
        let sum = 0
        for await (const chunk of body) {
          sum = (sum + sample(chunk, bytes)) % 65521
          bytes += chunk.byteLength
        }
        return { bytes, sum }
      }
    }
  )
  await rpc.start()
  const updates = countWindowUpdates()
  try {
    const c = new RpcClient({ host: client, target: server.getMultiaddrs()[0] })
    for (let i = 0; i < 200; i++) assert.equal(await c.callUnchecked('echo', { i, pad: 'x'.repeat(64) }), { i, pad: 'x'.repeat(64) })
    // 200 requests and 200 replies: with an update per DATA frame that was 400 updates
    assert.is(updates.sent, 0, 'no window update for ~30 KiB of small frames each way')
    const total = 24 * 1024 * 1024
    const chunk = new Uint8Array(256 * 1024).map((_, i) => (i * 7) & 0xff)
    let expectSum = 0
    for (let at = 0; at < total; at += chunk.byteLength) expectSum = (expectSum + sample(chunk, at)) % 65521
    async function * body (): AsyncGenerator<Uint8Array> {
      for (let sent = 0; sent < total; sent += chunk.byteLength) yield chunk
    }
    const got = await c.uploadUnchecked<{ bytes: number, sum: number }>('sink', {}, body())
    assert.is(got.bytes, total)
    assert.is(got.sum, expectSum, 'the same bytes in the same places')
    assert.ok(updates.sent > 0, 'a bulk transfer past half a window gets its updates')
    await c.close()
  } finally {
    updates.restore()
    await rpc.stop()
    await Promise.all([server.stop(), client.stop()])
  }
})

/** A uint16 big-endian length prefix, as @chainsafe/libp2p-noise frames its messages. */
function frame (payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(2 + payload.byteLength)
  out[0] = payload.byteLength >> 8
  out[1] = payload.byteLength & 0xff
  out.set(payload, 2)
  return out
}

test('length-prefixed decoding ends a chunk without asking the length decoder about an empty buffer, frames unchanged', () => {
  installQuietLengthPrefixedDecoder()
  let emptyAsked = 0
  const decoder = new LengthPrefixedDecoder({
    lengthDecoder: (d: Uint8ArrayList | Uint8Array) => {
      if (d.byteLength === 0) emptyAsked++
      if (d.byteLength < 2) throw new RangeError('Could not decode int16BE')
      return d instanceof Uint8Array ? (d[0] << 8) | d[1] : d.getUint16(0)
    },
    encodingLength: () => 2
  })
  const payloads = [new Uint8Array([1, 2, 3]), new Uint8Array(300).fill(9), new Uint8Array([7])]
  const wire = new Uint8ArrayList(...payloads.map(frame)).subarray()
  // whole frames in one chunk
  const out = [...decoder.decode(wire)].map((b) => b.subarray())
  assert.equal(out, payloads)
  assert.is(emptyAsked, 0)
  // the same bytes one at a time (prefixes split in two): still the same frames, in order
  const split: Uint8Array[] = []
  for (const b of wire) for (const f of decoder.decode(new Uint8Array([b]))) split.push(f.subarray())
  assert.equal(split, payloads)
  assert.is(emptyAsked, 0)
})

test.run()
