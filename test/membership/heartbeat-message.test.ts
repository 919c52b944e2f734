import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { encode as cborEncode } from 'cborg'
import { decodeHeartbeat, encodeHeartbeat, type Heartbeat } from '../../src/membership/heartbeat-message.js'
import { HEARTBEAT_BYTES_MAX } from '../../src/membership/constants.js'

const test = suite('membership/heartbeat-message')

const ID = '12D3KooWRyh2zNmr7R2ixgMm9AXDBYUYPzfntKCELAq8HDtpAVMX'

function sample (): Heartbeat {
  return {
    id: ID,
    incarnation: 1_700_000_000_000,
    seq: 7,
    name: 'node-1',
    region: 'eu-west',
    addrs: [`/ip4/127.0.0.1/tcp/7400/p2p/${ID}`, '/ip6/::1/tcp/7400'],
    load: { extents: 12, bytes: 50_331_648 },
    capacity: { bytes: 1_000_000_000_000 },
    sentAtMs: 1_700_000_001_234
  }
}

function refused (bytes: Uint8Array, why: string): void {
  assert.throws(() => decodeHeartbeat(bytes), (e: any) => e.name === 'InvalidHeartbeat', why)
}

/** Encodes `value` as CBOR without any checks (what a buggy or hostile peer may send). */
const raw = (value: unknown): Uint8Array => cborEncode(value)

test('round trip; the encoding is a few hundred bytes', () => {
  const hb = sample()
  const bytes = encodeHeartbeat(hb)
  assert.ok(bytes.byteLength < 400, `${bytes.byteLength} bytes`)
  assert.equal(decodeHeartbeat(bytes), hb)
  const empty = { ...hb, name: '', region: '', addrs: [] }
  assert.equal(decodeHeartbeat(encodeHeartbeat(empty)), empty)
})

test('encodeHeartbeat refuses to send what peers would refuse', () => {
  assert.throws(() => encodeHeartbeat({ ...sample(), seq: 0 }), (e: any) => e.name === 'InvalidHeartbeat')
  assert.throws(() => encodeHeartbeat({ ...sample(), name: 'x'.repeat(65) }), (e: any) => e.name === 'InvalidHeartbeat')
})

test('garbage, non-map and oversized payloads are refused', () => {
  refused(new Uint8Array(0), 'empty')
  refused(Uint8Array.of(0xff, 0x00, 0x13), 'not CBOR')
  refused(new TextEncoder().encode('{"id":"x"}'), 'JSON')
  refused(raw([1, 2, 3]), 'an array')
  refused(raw('hello'), 'a string')
  refused(raw(null), 'null')
  refused(raw(new Uint8Array(10)), 'bytes')
  const big = encodeHeartbeatUnchecked({ ...sample(), name: 'x'.repeat(HEARTBEAT_BYTES_MAX) })
  assert.ok(big.byteLength > HEARTBEAT_BYTES_MAX)
  assert.throws(() => decodeHeartbeat(big), (e: any) => e.name === 'InvalidHeartbeat' && e.details.bytesMax === HEARTBEAT_BYTES_MAX)
  const trailing = new Uint8Array([...encodeHeartbeat(sample()), 0x00])
  refused(trailing, 'trailing bytes after the map')
})

function encodeHeartbeatUnchecked (value: unknown): Uint8Array {
  return raw(value)
}

test('every field is type-checked: wrong types, negative, fractional or huge numbers, missing and extra keys', () => {
  const cases: Array<[string, (h: any) => void]> = [
    ['id number', (h) => { h.id = 5 }],
    ['id empty', (h) => { h.id = '' }],
    ['id too long', (h) => { h.id = 'x'.repeat(129) }],
    ['seq text', (h) => { h.seq = '7' }],
    ['seq zero', (h) => { h.seq = 0 }],
    ['seq negative', (h) => { h.seq = -1 }],
    ['seq fraction', (h) => { h.seq = 1.5 }],
    ['seq beyond 2^53', (h) => { h.seq = 2n ** 60n }],
    ['incarnation missing', (h) => { delete h.incarnation }],
    ['name bytes', (h) => { h.name = new Uint8Array(3) }],
    ['name control characters', (h) => { h.name = 'a\u001b[31mred' }],
    ['region too long', (h) => { h.region = 'r'.repeat(65) }],
    ['addrs not an array', (h) => { h.addrs = '/ip4/1.2.3.4/tcp/1' }],
    ['addrs too many', (h) => { h.addrs = Array.from({ length: 17 }, (_, i) => `/ip4/127.0.0.1/tcp/${i + 1}`) }],
    ['addr not a multiaddr', (h) => { h.addrs = ['127.0.0.1:7400'] }],
    ['addr number', (h) => { h.addrs = [7400] }],
    ['addr too long', (h) => { h.addrs = ['/dns/' + 'a'.repeat(300) + '/tcp/1'] }],
    ['load missing bytes', (h) => { h.load = { extents: 1 } }],
    ['load extra key', (h) => { h.load = { extents: 1, bytes: 2, evil: 3 } }],
    ['load an array', (h) => { h.load = [1, 2] }],
    ['capacity negative', (h) => { h.capacity = { bytes: -1 } }],
    ['capacity float', (h) => { h.capacity = { bytes: 0.5 } }],
    ['sentAtMs null', (h) => { h.sentAtMs = null }],
    ['extra top-level key', (h) => { h.admin = true }],
    ['missing id', (h) => { delete h.id }]
  ]
  for (const [why, mutate] of cases) {
    const h: any = structuredClone(sample())
    mutate(h)
    refused(raw(h), why)
  }
})

test('non-canonical or exotic CBOR is refused: duplicate keys, tags, indefinite lengths, undefined, NaN', () => {
  // {"id": "a", "id": "b"}
  refused(Uint8Array.of(0xa2, 0x62, 0x69, 0x64, 0x61, 0x61, 0x62, 0x69, 0x64, 0x61, 0x62), 'duplicate map keys')
  // tag 1 (epoch time) around a map
  refused(new Uint8Array([0xc1, ...encodeHeartbeat(sample())]), 'a tag')
  // an indefinite-length map holding one pair, then break
  refused(Uint8Array.of(0xbf, 0x62, 0x69, 0x64, 0x61, 0x61, 0xff), 'indefinite length')
  // {"seq": undefined}
  refused(Uint8Array.of(0xa1, 0x63, 0x73, 0x65, 0x71, 0xf7), 'undefined')
  // {"seq": NaN} (half float 0x7e00)
  refused(Uint8Array.of(0xa1, 0x63, 0x73, 0x65, 0x71, 0xf9, 0x7e, 0x00), 'NaN')
  // the integer 1 encoded in two bytes instead of one (non-minimal, refused in strict mode)
  refused(Uint8Array.of(0x18, 0x01), 'non-minimal integer')
})

test.run()
