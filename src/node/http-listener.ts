import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'

/** Longest a request may take to arrive whole, and its headers alone, on a node's own HTTP listeners. */
export const HTTP_REQUEST_TIMEOUT_MS = 30_000
export const HTTP_HEADERS_TIMEOUT_MS = 10_000
/** Most headers one request may carry. */
export const HTTP_HEADERS_MAX = 64

/**
 * A plain HTTP listener of the node's (metrics, status page) on host:port (port 0: a free one), with
 * the limits above and at most `connectionsMax` connections; resolves once it listens, rejects when
 * it cannot (the port taken, say).
 */
export async function listenHttp (listen: { host: string, port: number }, handler: (req: IncomingMessage, res: ServerResponse) => void,
  options: { connectionsMax?: number } = {}): Promise<Server> {
  const server = createServer(handler)
  server.requestTimeout = HTTP_REQUEST_TIMEOUT_MS
  server.headersTimeout = HTTP_HEADERS_TIMEOUT_MS
  server.maxHeadersCount = HTTP_HEADERS_MAX
  if (options.connectionsMax !== undefined) server.maxConnections = options.connectionsMax
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(listen.port, listen.host, () => { server.off('error', reject); resolve() })
  })
  return server
}

/** Where `server` listens; `what` names it in the error when it does not. */
export function listeningAt (server: Server | undefined, what: string): { host: string, port: number } {
  const a = server?.address() as AddressInfo | null | undefined
  if (a == null) throw new Error(`${what} is not serving`)
  return { host: a.address, port: a.port }
}
