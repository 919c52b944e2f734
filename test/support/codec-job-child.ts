// A process that compresses one large extent on a codec worker and then has nothing left to do: it
// must exit by itself (the pool's idle worker keeps nothing alive) and must not exit before the job
// is done (a pending job does). See test/api/codec-workers.test.ts.
import { codecWorkerStats, encodeForCopies } from '@dfs/api'
import { logLikeText } from './log-text.js'

const out = await encodeForCopies('child', 'zstd', logLikeText(1024 * 1024, 5))
process.stdout.write(JSON.stringify({ codec: out.codec, offloaded: codecWorkerStats.offloaded }) + '\n')
