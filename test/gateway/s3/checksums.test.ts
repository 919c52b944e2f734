import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { createHash, randomBytes } from 'node:crypto'
import {
  checksumAlgorithmOf, checksumBase64, checksumHeaderName, createHasher, type ChecksumAlgorithm
} from '../../../src/gateway/s3/checksums.js'

const test = suite('gateway/s3/checksums')

const CHECK = Buffer.from('123456789')
const hexOf = (a: ChecksumAlgorithm, data: Uint8Array): string => {
  const h = createHasher(a)
  h.update(data)
  return h.digestHex()
}

test('check values of "123456789" (the CRC catalogue\'s)', () => {
  assert.is(hexOf('CRC32', CHECK), 'cbf43926')
  assert.is(hexOf('CRC32C', CHECK), 'e3069283')
  assert.is(hexOf('CRC64NVME', CHECK), 'ae8b14860a799888')
  // empty input: init xor xorout
  assert.is(hexOf('CRC32', new Uint8Array(0)), '00000000')
  assert.is(hexOf('CRC32C', new Uint8Array(0)), '00000000')
  assert.is(hexOf('CRC64NVME', new Uint8Array(0)), '0000000000000000')
})

test('base64 as S3 sends it: the big-endian digest bytes', () => {
  assert.is(checksumBase64('CRC32C', CHECK), '4waSgw==')
  assert.is(checksumBase64('CRC64NVME', CHECK), 'rosUhgp5mIg=')
  assert.is(checksumBase64('CRC32', CHECK), Buffer.from('cbf43926', 'hex').toString('base64'))
  assert.is(checksumBase64('MD5', CHECK), createHash('md5').update(CHECK).digest('base64'))
})

/** Bit-at-a-time references, independent of the table-driven code. */
function crc32cBitwise (data: Uint8Array): number {
  let c = 0xFFFFFFFF
  for (const b of data) {
    c ^= b
    for (let k = 0; k < 8; k++) c = (c & 1) !== 0 ? (c >>> 1) ^ 0x82F63B78 : c >>> 1
  }
  return (c ^ 0xFFFFFFFF) >>> 0
}

function crc64nvmeBitwise (data: Uint8Array): bigint {
  const poly = 0x9a6c9329ac4bc9b5n
  const mask = (1n << 64n) - 1n
  let c = mask
  for (const b of data) {
    c ^= BigInt(b)
    for (let k = 0; k < 8; k++) c = (c & 1n) !== 0n ? (c >> 1n) ^ poly : c >> 1n
  }
  return c ^ mask
}

test('table-driven CRCs agree with bitwise references, in any split', () => {
  for (const n of [1, 3, 4, 5, 17, 1000, 4099]) {
    const data = randomBytes(n)
    assert.is(hexOf('CRC32C', data), crc32cBitwise(data).toString(16).padStart(8, '0'), `crc32c ${n}`)
    assert.is(hexOf('CRC64NVME', data), crc64nvmeBitwise(data).toString(16).padStart(16, '0'), `crc64 ${n}`)
    for (const a of ['CRC32', 'CRC32C', 'CRC64NVME', 'SHA1', 'SHA256'] as const) {
      const h = createHasher(a)
      let at = 0
      while (at < n) {
        const step = 1 + Math.floor(Math.random() * 7)
        h.update(data.subarray(at, at + step))
        at += step
      }
      assert.is(h.digestHex(), hexOf(a, data), `${a} split ${n}`)
    }
  }
})

test('SHA-1, SHA-256, MD5 agree with node:crypto', () => {
  const data = randomBytes(70_000)
  assert.is(hexOf('SHA1', data), createHash('sha1').update(data).digest('hex'))
  assert.is(hexOf('SHA256', data), createHash('sha256').update(data).digest('hex'))
  const md5 = createHasher('MD5')
  md5.update(data.subarray(0, 10))
  md5.update(data.subarray(10))
  assert.is(md5.digestHex(), createHash('md5').update(data).digest('hex'))
})

test('names: header names and x-amz-sdk-checksum-algorithm values', () => {
  assert.is(checksumHeaderName('CRC64NVME'), 'x-amz-checksum-crc64nvme')
  assert.is(checksumAlgorithmOf('x-amz-checksum-crc32c'), 'CRC32C')
  assert.is(checksumAlgorithmOf('crc32'), 'CRC32')
  assert.is(checksumAlgorithmOf('SHA256'), 'SHA256')
  assert.is(checksumAlgorithmOf('x-amz-checksum-md5'), undefined)
  assert.is(checksumAlgorithmOf('x-amz-checksum-type'), undefined)
})

test.run()
