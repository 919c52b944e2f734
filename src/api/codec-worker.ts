/**
 * The thread a CodecWorkers pool runs: compresses an extent whole and, when the job asks, proves
 * the encoding (proveEncoding), one job at a time, and answers with the job's id.
 */
import { parentPort } from 'node:worker_threads'
import { compressWhole, isExtentCodec, proveEncoding, type ProvenEncoding } from './codec.js'
import { movable, type CodecJob, type CodecReply } from './codec-workers.js'

const port = parentPort
if (port === null) throw new Error('codec-worker runs only as a worker thread')

port.on('message', (job: CodecJob) => {
  let reply: CodecReply
  // moved bytes go back unless the answer is an encoding: their sender gave them up
  const back = job.moved && job.bytes instanceof Uint8Array ? job.bytes : undefined
  try {
    if (!isExtentCodec(job.codec) || !(job.bytes instanceof Uint8Array)) throw new Error('malformed codec job')
    const out: ProvenEncoding = job.prove ? proveEncoding(job.extentId, job.codec, job.bytes) : compressWhole(job.codec, job.bytes)
    reply = out.codec !== undefined
      ? { seq: job.seq, codec: out.codec, bytes: out.bytes }
      : { seq: job.seq, ...(out.refused !== undefined ? { refused: out.refused } : {}), ...(back !== undefined ? { bytes: back } : {}) }
  } catch (err) {
    reply = { seq: job.seq, error: String((err as Error)?.message ?? err), ...(back !== undefined ? { bytes: back } : {}) }
  }
  // an encoding moves back when it owns its memory (zstd's and lz4's results do); moved bytes always
  const answer = 'bytes' in reply ? reply.bytes : undefined
  try {
    port.postMessage(reply, answer !== undefined && movable(answer) ? [answer.buffer as ArrayBuffer] : [])
  } catch {
    // memory Node will not move (a native module's buffer marked untransferable): copied
    port.postMessage(reply)
  }
})
