import { logger } from '@libp2p/logger'
import { HeartbeatService, heartbeatComponents } from '../membership/heartbeat.js'
import type { NodeHost } from '../net/host.js'
import type { ExtentStore, MemberRecord, MetadataService } from '@dfs/api'

const log = logger('dfs:node:membership')

export type Health = 'healthy' | 'suspected' | 'failed'

export interface ClusterMembershipInit {
  host: NodeHost
  nodeId: string
  clusterId: string
  metadata: MetadataService
  store: ExtentStore
  name?: string
  region?: string
  heartbeatMs?: number
  failureTimeoutMs?: number
}

/** How often the set of watched members is brought in line with metadata. */
const MEMBER_SYNC_MS = 1000

/**
 * The node's view of the other members' health: heartbeats over gossip, judged by the failure
 * detector, for exactly the members metadata lists (this node counts itself healthy).
 */
export class ClusterMembership {
  readonly #init: ClusterMembershipInit
  readonly #heartbeats: HeartbeatService
  #members = new Set<string>()
  #timer: ReturnType<typeof setInterval> | undefined

  constructor (init: ClusterMembershipInit) {
    this.#init = init
    this.#heartbeats = new HeartbeatService(heartbeatComponents(init.host), {
      clusterId: init.clusterId,
      isMember: (peer) => this.#members.has(peer),
      name: init.name,
      region: init.region,
      heartbeatMs: init.heartbeatMs,
      failureTimeoutMs: init.failureTimeoutMs,
      stats: async ({ signal }) => {
        const usage = await init.store.usage({ signal })
        return { load: { extents: usage.extents, bytes: usage.bytes }, capacity: { bytes: 0 } }
      }
    })
    this.#heartbeats.addEventListener('transition', (evt) => {
      const t = evt.detail
      log('member %s: %s -> %s', t.member, t.from, t.to)
    })
  }

  start (): void {
    this.#sync()
    this.#heartbeats.start()
    this.#timer = setInterval(() => { this.#sync() }, MEMBER_SYNC_MS)
    this.#timer.unref?.()
  }

  stop (): void {
    if (this.#timer !== undefined) clearInterval(this.#timer)
    this.#heartbeats.stop()
  }

  health (id: string): Health {
    if (id === this.#init.nodeId) return 'healthy'
    // a member that joined since the last sync starts being watched now (with the detector's grace)
    if (!this.#members.has(id)) this.#sync()
    const h = this.#heartbeats.health(id)
    return h === 'Healthy' ? 'healthy' : h === 'Suspected' ? 'suspected' : 'failed'
  }

  #listMembers (): MemberRecord[] {
    const m = this.#init.metadata
    return m.staleRead != null ? m.staleRead((view) => view.members()) : []
  }

  #sync (): void {
    let members: MemberRecord[]
    try {
      members = this.#listMembers()
    } catch {
      return
    }
    const next = new Set(members.map((m) => m.id).filter((id) => id !== this.#init.nodeId))
    const added = [...next].filter((id) => !this.#members.has(id))
    // the service asks isMember() before it watches, so the new set goes in first
    this.#members = next
    for (const id of added) this.#heartbeats.watch(id)
  }
}
