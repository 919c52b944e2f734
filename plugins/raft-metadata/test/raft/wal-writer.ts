// A child process of wal-log-store.test.ts: appends to the log in argv[2] until it is killed,
// printing the number of each write once the log acknowledged it.
import { WalLogStore } from '../../src/raft/wal-log-store.js'

const w = await WalLogStore.open(process.argv[2], { segmentBytes: 256 * 1024 })
const last = await w.get('last')
let i = last === undefined ? 0 : Number(new TextDecoder().decode(last)) + 1
const enc = new TextEncoder()
for (;; i++) {
  await w.batch([{ type: 'put', key: `k${i}`, value: enc.encode(`${i}`.repeat(1 + (i % 300))) }, { type: 'put', key: 'last', value: enc.encode(String(i)) }], { sync: true })
  process.stdout.write(`${i}\n`)
}
