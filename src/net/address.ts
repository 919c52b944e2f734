import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import { InvalidArgumentError } from '@dfs/api'

/**
 * Accepts `host:port`, `[v6]:port`, `:port`, a bare port, or a multiaddr (`/ip4/…/tcp/…[/p2p/…]`),
 * and returns a TCP multiaddr. Host names other than `localhost` become `/dns/…` addresses.
 */
export function parseAddress (input: string, options: { defaultHost?: string } = {}): Multiaddr {
  const text = input.trim()
  if (text.length === 0) throw new InvalidArgumentError('an address must not be empty')
  if (text.startsWith('/')) {
    try {
      const ma = multiaddr(text)
      const names = ma.getComponents().map((c) => c.name)
      if (!names.includes('tcp')) throw new Error('only TCP addresses are supported')
      return ma
    } catch (err) {
      throw new InvalidArgumentError(`${JSON.stringify(input)} is not a valid TCP multiaddr: ${(err as Error).message}`, { address: input })
    }
  }
  let host: string
  let portText: string
  const v6 = /^\[([^\]]+)\]:(\d+)$/.exec(text)
  if (v6 != null) {
    host = v6[1]
    portText = v6[2]
  } else if (/^\d+$/.test(text)) {
    host = options.defaultHost ?? '127.0.0.1'
    portText = text
  } else {
    const i = text.lastIndexOf(':')
    if (i < 0) throw new InvalidArgumentError(`${JSON.stringify(input)} is not host:port or a multiaddr`, { address: input })
    host = i === 0 ? (options.defaultHost ?? '127.0.0.1') : text.slice(0, i)
    portText = text.slice(i + 1)
  }
  const port = Number(portText)
  if (!/^\d+$/.test(portText) || port > 65535) {
    throw new InvalidArgumentError(`${JSON.stringify(input)} has no valid port (0-65535)`, { address: input })
  }
  if (host === 'localhost') host = '127.0.0.1'
  const proto = /^\d{1,3}(\.\d{1,3}){3}$/.test(host) ? 'ip4' : host.includes(':') ? 'ip6' : 'dns'
  return multiaddr(`/${proto}/${host}/tcp/${port}`)
}
