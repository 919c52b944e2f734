/**
 * Socket write coalescing under Noise.
 *
 * Every Yamux frame becomes one Noise message, and @chainsafe/libp2p-noise hands each message to the
 * TCP connection as two buffers (the 2-byte length, then the ciphertext), which @libp2p/tcp writes
 * with one `socket.write` each. Node writes an uncorked socket at once, so a Raft round on a node
 * (appends, acknowledgements, Yamux window updates, an RPC reply) cost two syscalls per frame, and on
 * a metadata write that is CPU the node does not have. Corking the socket from its first write in a
 * tick until `process.nextTick` hands everything written in between to the kernel in one `writev`:
 * same bytes, same order, same backpressure (`write` still returns false past the high-water mark).
 *
 * The hook is a wrapper of the connection encrypter because that is the first place libp2p hands the
 * raw connection to pluggable code; it finds the socket where @libp2p/tcp keeps it (`socket`) and
 * leaves any other connection as it is.
 */
import { Socket } from 'node:net'
import type { ConnectionEncrypter, MessageStream } from '@libp2p/interface'

const coalesced = new WeakSet<Socket>()

/**
 * Corks `socket` at its first small write in a tick and uncorks it on the next tick. A write that
 * would fill the buffer to the high-water mark (bulk data) first flushes what was batched and goes
 * out at once, so bulk transfers see the backpressure they always did. Idempotent.
 */
export function coalesceSocketWrites (socket: Socket): void {
  if (coalesced.has(socket)) return
  coalesced.add(socket)
  // eslint-disable-next-line @typescript-eslint/unbound-method -- called below with apply(this)
  const write = socket.write
  let corked = false
  const flush = (): void => {
    if (!corked) return
    corked = false
    socket.uncork()
  }
  socket.write = function (this: Socket, ...args: Parameters<Socket['write']>): boolean {
    const chunk = args[0]
    const bytes = typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.byteLength
    if (socket.writableLength + bytes >= socket.writableHighWaterMark) {
      flush()
    } else if (!corked && !socket.destroyed) {
      corked = true
      socket.cork()
      process.nextTick(flush)
    }
    return write.apply(this, args)
  } as Socket['write']
}

/** The TCP socket under a raw libp2p connection, if it is one. */
function socketOf (connection: MessageStream): Socket | undefined {
  const socket = (connection as { socket?: unknown }).socket
  return socket instanceof Socket ? socket : undefined
}

/** Wraps a connection encrypter factory (e.g. `noise()`) so that the sockets under it coalesce writes. */
export function coalescingWrites<C, E> (factory: (components: C) => ConnectionEncrypter<E>): (components: C) => ConnectionEncrypter<E> {
  return (components) => {
    const inner = factory(components)
    const hook = (connection: MessageStream): void => {
      const socket = socketOf(connection)
      if (socket !== undefined) coalesceSocketWrites(socket)
    }
    // the inner encrypter stays the prototype, so whatever else libp2p reads from it is still there
    const outer = Object.create(inner) as ConnectionEncrypter<E>
    outer.secureInbound = async (connection, options) => {
      hook(connection)
      return await inner.secureInbound(connection, options)
    }
    outer.secureOutbound = async (connection, options) => {
      hook(connection)
      return await inner.secureOutbound(connection, options)
    }
    return outer
  }
}
