import { logger } from '@libp2p/logger'
import { peerIdFromString } from '@libp2p/peer-id'
import type { Libp2p } from '@libp2p/interface'
import type { CallOptions } from '@dfs/api'
import { findMember } from './discovery.js'
import { LOCATE_INTERVAL_MS_DEFAULT, LOCATE_PEERS_MAX, LOCATE_TIMEOUT_MS_DEFAULT } from './constants.js'

const log = logger('dfs:membership:locate')

export interface MemberLocatorInit {
  /** Least time between two lookups of one member (default 5000). */
  intervalMs?: number
  /** Deadline of one lookup (default 4000; the caller's signal may end it sooner). */
  timeoutMs?: number
}

type LocatorHost = Pick<Libp2p, 'peerId' | 'peerRouting' | 'getMultiaddrs' | 'peerStore'>

/**
 * Finds a member again after it moved: when a member cannot be dialled at the addresses metadata and
 * the peer store have for it (it restarted on another port, and the new address has not reached this
 * node's metadata yet), the caller asks `locate`, which asks the DHT for the member's current
 * addresses and puts them in the peer store in place of the old ones. The answer says whether a retry
 * is worth it: true only if the DHT told addresses the peer store did not have.
 *
 * Lookups are rate-limited per member: at most one per `intervalMs`, and callers that ask while one is
 * in flight share it, so a Raft transport retrying every few milliseconds never floods the DHT.
 */
export class MemberLocator {
  readonly intervalMs: number
  readonly timeoutMs: number
  readonly #host: LocatorHost
  /** Per member: when its last lookup started and, while it runs, its promise (insertion = age order). */
  readonly #lookups = new Map<string, { startedMs: number, pending?: Promise<boolean> }>()
  /** Lookups made (not counting those refused by the rate limit or shared). */
  lookups = 0

  constructor (host: LocatorHost, init: MemberLocatorInit = {}) {
    this.#host = host
    this.intervalMs = init.intervalMs ?? LOCATE_INTERVAL_MS_DEFAULT
    this.timeoutMs = init.timeoutMs ?? LOCATE_TIMEOUT_MS_DEFAULT
    if (!Number.isSafeInteger(this.intervalMs) || this.intervalMs < 0) throw new Error(`locator: intervalMs must be a non-negative integer, got ${this.intervalMs}`)
    if (!Number.isSafeInteger(this.timeoutMs) || this.timeoutMs < 1) throw new Error(`locator: timeoutMs must be a positive integer, got ${this.timeoutMs}`)
  }

  /** True if the DHT told new addresses of `peer` (now in the peer store). Never throws. */
  async locate (peer: string, options: CallOptions = {}): Promise<boolean> {
    const last = this.#lookups.get(peer)
    if (last?.pending != null) return await last.pending
    const now = performance.now()
    if (last != null && now - last.startedMs < this.intervalMs) return false
    const entry: { startedMs: number, pending?: Promise<boolean> } = { startedMs: now }
    this.#lookups.delete(peer)
    this.#lookups.set(peer, entry)
    while (this.#lookups.size > LOCATE_PEERS_MAX) this.#lookups.delete(this.#lookups.keys().next().value as string)
    entry.pending = this.#lookup(peer, options).finally(() => { entry.pending = undefined })
    return await entry.pending
  }

  async #lookup (peer: string, options: CallOptions): Promise<boolean> {
    this.lookups++
    try {
      const id = peerIdFromString(peer)
      // read before the lookup: libp2p merges what the DHT answers into the peer store itself
      const known = await this.#host.peerStore.get(id).then((p) => p.addresses.map((a) => a.multiaddr.toString()), (): string[] => [])
      const found = await findMember(this.#host, id, { signal: options.signal, timeoutMs: this.timeoutMs })
      const fresh = found.addrs.filter((a) => !known.includes(a.toString()))
      if (fresh.length === 0) return false
      // the old addresses are what failed: dial only the current ones
      await this.#host.peerStore.patch(id, { multiaddrs: found.addrs })
      log('member %s is now at %s (was %s)', peer, found.addrs.map(String).join(' '), known.join(' ') || 'unknown')
      return true
    } catch (err) {
      log('looking up member %s: %s: %s', peer, (err as Error)?.name, (err as Error)?.message)
      return false
    }
  }
}
