import { logger } from '@libp2p/logger'
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import { InvalidArgumentError } from '@dfs/api'

const log = logger('dfs:net:member-addrs')

/** Addresses a joining node may give for itself. */
export const MEMBER_ADDRS_MAX = 16

/** Characters of one member address (a multiaddr's text form). */
export const MEMBER_ADDR_CHARS_MAX = 256

/** Bad (peer, address) pairs already logged: each is logged once (bounded; oldest forgotten first). */
const LOGGED_MAX = 1024
const logged = new Set<string>()

/**
 * Checks the addresses a joining node gives for itself (`cluster.join` params), before anything is
 * stored: an array of 1 to MEMBER_ADDRS_MAX strings, each at most MEMBER_ADDR_CHARS_MAX characters,
 * each a multiaddr with a TCP component, and none naming another PeerId (`/p2p/…` other than
 * `peer`'s). Returns them in canonical text form; throws InvalidArgument naming the first fault.
 */
export function validateMemberAddrs (raw: unknown, options: { peer?: string } = {}): string[] {
  if (!Array.isArray(raw)) throw new InvalidArgumentError('addrs must be an array of multiaddrs', { field: 'addrs' })
  if (raw.length === 0 || raw.length > MEMBER_ADDRS_MAX) {
    throw new InvalidArgumentError(`addrs must hold 1 to ${MEMBER_ADDRS_MAX} addresses, got ${raw.length}`, { field: 'addrs', count: raw.length })
  }
  return raw.map((a: unknown, i) => {
    const field = `addrs[${i}]`
    if (typeof a !== 'string' || a.length === 0 || a.length > MEMBER_ADDR_CHARS_MAX) {
      throw new InvalidArgumentError(`${field} must be a multiaddr of 1 to ${MEMBER_ADDR_CHARS_MAX} characters`, { field })
    }
    let ma: Multiaddr
    try {
      ma = multiaddr(a)
    } catch (err) {
      throw new InvalidArgumentError(`${field} is not a multiaddr: ${String((err as Error)?.message ?? err).slice(0, 200)}`, { field })
    }
    const components = ma.getComponents()
    if (!components.some((c) => c.name === 'tcp')) throw new InvalidArgumentError(`${field} has no TCP port`, { field })
    const p2p = components.find((c) => c.name === 'p2p')?.value
    if (p2p !== undefined && options.peer !== undefined && p2p !== options.peer) {
      throw new InvalidArgumentError(`${field} names another peer (${p2p.slice(0, 64)})`, { field })
    }
    const text = ma.toString()
    if (text.length > MEMBER_ADDR_CHARS_MAX) throw new InvalidArgumentError(`${field} is too long in canonical form`, { field })
    return text
  })
}

/**
 * The addresses of a member record that parse, for dialling it. A record written by an older node
 * (or a bug) may hold anything: an address that does not parse is skipped and logged once, never
 * thrown, so one bad record cannot stop this node from reaching the others.
 */
export function parseMemberAddrs (peer: string, addrs: readonly unknown[]): Multiaddr[] {
  const out: Multiaddr[] = []
  for (const a of Array.isArray(addrs) ? addrs.slice(0, MEMBER_ADDRS_MAX) : []) {
    try {
      if (typeof a !== 'string' || a.length > MEMBER_ADDR_CHARS_MAX) throw new Error('not a multiaddr string of a sane length')
      out.push(multiaddr(a))
    } catch (err) {
      const key = `${peer} ${String(a).slice(0, MEMBER_ADDR_CHARS_MAX)}`
      if (!logged.has(key)) {
        logged.add(key)
        if (logged.size > LOGGED_MAX) logged.delete(logged.values().next().value as string)
        log.error('ignoring an address of member %s that does not parse (%s): %s', peer, String(a).slice(0, 80), (err as Error)?.message)
      }
    }
  }
  return out
}
