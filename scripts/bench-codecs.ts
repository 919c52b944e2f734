// npm run bench:codecs: the extent codecs on this machine, to pick the cluster's default `compression`.
// lz4-napi (compressSync / uncompressSync) and zstd-napi at levels 1 and 3, each on 4 MiB of log-like
// text (test/support/log-text.ts) and 4 MiB of random bytes: MiB/s of compress and decompress (of the
// logical bytes, one thread, median of --reps) and the ratio stored / logical. Asserts nothing.
//
//   node --import ./bin/polyfill.js --import tsx --conditions=dfs-source scripts/bench-codecs.ts [--reps 7] [--json]
//
// --json: stdout carries one JSON document, `{ rows: [{ codec, data, compressMiBps, decompressMiBps,
// ratio }] }`; the table goes to stderr.
import { randomBytes } from 'node:crypto'
import { createRequire } from 'node:module'
import { logLikeText } from '../test/support/log-text.js'
import { humanLog, numberOption, pct } from './bench-stats.js'

const require = createRequire(import.meta.url)
const lz4 = require('lz4-napi') as { compressSync: (b: Buffer) => Buffer, uncompressSync: (b: Uint8Array) => Buffer }
const zstd = require('zstd-napi') as {
  Compressor: new () => { setParameters: (p: { compressionLevel: number }) => void, compress: (b: Uint8Array) => Buffer }
  Decompressor: new () => { decompress: (b: Uint8Array) => Buffer }
}

const args = process.argv.slice(2)
const reps = Math.max(1, numberOption(args, 'reps', 7))
const json = args.includes('--json')
const log = humanLog(json)
const MiB = 1024 * 1024
const SIZE = 4 * MiB

interface Codec { name: string, compress: (b: Buffer) => Buffer, decompress: (b: Buffer) => Uint8Array }

function zstdAt (level: number): Codec {
  const c = new zstd.Compressor()
  c.setParameters({ compressionLevel: level })
  const d = new zstd.Decompressor()
  return { name: `zstd-${level}`, compress: (b) => c.compress(b), decompress: (b) => d.decompress(b) }
}

const codecs: Codec[] = [
  { name: 'lz4', compress: (b) => lz4.compressSync(b), decompress: (b) => lz4.uncompressSync(b) },
  zstdAt(1),
  zstdAt(3)
]
const data: Array<[string, Buffer]> = [
  ['log-text', Buffer.from(logLikeText(SIZE, 7))],
  ['random', randomBytes(SIZE)]
]

interface Row { codec: string, data: string, compressMiBps: number, decompressMiBps: number, ratio: number }
const rows: Row[] = []
for (const [dataName, bytes] of data) {
  for (const codec of codecs) {
    const c: number[] = []
    const d: number[] = []
    let stored = codec.compress(bytes)
    for (let i = 0; i < reps; i++) {
      let t = process.hrtime.bigint()
      stored = codec.compress(bytes)
      c.push(Number(process.hrtime.bigint() - t) / 1e9)
      t = process.hrtime.bigint()
      const back = codec.decompress(stored)
      d.push(Number(process.hrtime.bigint() - t) / 1e9)
      if (back.byteLength !== bytes.byteLength) throw new Error(`${codec.name} did not round-trip`)
    }
    rows.push({
      codec: codec.name,
      data: dataName,
      compressMiBps: SIZE / MiB / pct(c, 50),
      decompressMiBps: SIZE / MiB / pct(d, 50),
      ratio: stored.byteLength / SIZE
    })
  }
}

log(`extent codecs, ${SIZE / MiB} MiB, median of ${reps} (one thread)`)
log('codec    data      compress MiB/s  decompress MiB/s  stored/logical')
for (const r of rows) {
  log(`${r.codec.padEnd(8)} ${r.data.padEnd(9)} ${r.compressMiBps.toFixed(0).padStart(14)}  ${r.decompressMiBps.toFixed(0).padStart(16)}  ${r.ratio.toFixed(3).padStart(14)}`)
}
if (json) process.stdout.write(JSON.stringify({ rows: rows.map((r) => ({ ...r, compressMiBps: Math.round(r.compressMiBps), decompressMiBps: Math.round(r.decompressMiBps), ratio: Number(r.ratio.toFixed(4)) })) }) + '\n')
