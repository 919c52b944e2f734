import { logger } from '@libp2p/logger'
import type { MetadataService } from '@dfs/api'
import { generateClusterKey } from '../security/cluster-key.js'

const log = logger('dfs:node:cluster-key')

/** How often a node looks whether the cluster has a key, or whether it leads and should make one. */
const CHECK_INTERVAL_MS = 1000
/** Deadline of the one proposal. */
const PROPOSE_TIMEOUT_MS = 10_000

/**
 * Gives a cluster created before cluster keys existed its key: whichever node leads the system group
 * proposes SetClusterKey, once; AlreadyExists (another leader was first) is the same success. Runs
 * in the background until the key is there or `signal` aborts (the node stops). A cluster created
 * with a key returns at the first look.
 */
export async function ensureClusterKey (metadata: MetadataService, nodeId: string, signal: AbortSignal): Promise<void> {
  if (metadata.staleRead == null) return
  while (!signal.aborted) {
    if (metadata.staleRead((view) => view.cluster()?.publicKey) !== undefined) return
    if (metadata.status().leader === nodeId) {
      try {
        await metadata.propose({ type: 'SetClusterKey', clusterKey: generateClusterKey() }, { signal: AbortSignal.any([signal, AbortSignal.timeout(PROPOSE_TIMEOUT_MS)]) })
        log('gave the cluster its key')
        return
      } catch (err) {
        if ((err as Error)?.name === 'AlreadyExists') return
        log('proposing the cluster key failed (tried again): %s', (err as Error).message)
      }
    }
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, CHECK_INTERVAL_MS)
      signal.addEventListener('abort', done, { once: true })
      function done (): void {
        clearTimeout(timer)
        signal.removeEventListener('abort', done)
        resolve()
      }
    })
  }
}
