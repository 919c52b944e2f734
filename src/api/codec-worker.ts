/**
 * The thread a CodecWorkers pool runs: compresses an extent whole and proves the encoding
 * (proveEncoding), one job at a time, and answers with the job's id.
 */
import { parentPort } from 'node:worker_threads'
import { isExtentCodec, proveEncoding } from './codec.js'
import type { CodecJob, CodecReply } from './codec-workers.js'

const port = parentPort
if (port === null) throw new Error('codec-worker runs only as a worker thread')

port.on('message', (job: CodecJob) => {
  let reply: CodecReply
  try {
    if (!isExtentCodec(job.codec) || !(job.bytes instanceof Uint8Array)) throw new Error('malformed codec job')
    const out = proveEncoding(job.extentId, job.codec, job.bytes)
    reply = out.codec !== undefined
      ? { seq: job.seq, codec: out.codec, bytes: out.bytes }
      : { seq: job.seq, ...(out.refused !== undefined ? { refused: out.refused } : {}) }
  } catch (err) {
    reply = { seq: job.seq, error: String((err as Error)?.message ?? err) }
  }
  // the encoded bytes are copied back (a few hundred KiB for a compressed 4 MiB extent); the
  // buffers a codec returns are not all transferable
  port.postMessage(reply)
})
