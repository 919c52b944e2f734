import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { once } from 'node:events'
import { logger } from '@libp2p/logger'
import { isError } from '@dfs/api'
import { LocalRpc } from '../../net/rpc/local.js'
import { S3Error, s3Error } from './errors.js'
import { header, newRequestId, sendError, toS3Error } from './http.js'
import { authenticate, type Authenticated, type LookupKey, type SigV4Request } from './sigv4.js'
import { bodyChecks, verifiedBody } from './chunked.js'
import { requireBucketName } from './names.js'
import { bucketRoutes } from './buckets.js'
import { objectRoutes } from './objects.js'
import type { RpcServer } from '../../net/rpc/server.js'

const log = logger('dfs:gateway:s3')

/** Longest a request may take to send its headers (node's headersTimeout). */
export const S3_HEADERS_TIMEOUT_MS = 30_000
/** Longest a connection may send nothing, or read nothing of a response, before it is closed. */
export const S3_IDLE_TIMEOUT_MS = 120_000
/** Bytes of a request's headers (node's maxHeaderSize). */
export const S3_HEADER_BYTES_MAX = 32 * 1024
/** Requests served at once; more are answered SlowDown (503) at once. */
export const S3_REQUESTS_IN_FLIGHT_MAX = 256

export interface S3GatewayInit {
  /** Where to listen. Port 0 picks a free one. */
  host: string
  port: number
  /** The node's RPC server: every S3 request becomes calls of its methods as the key's user. */
  rpc: RpcServer
  /** The key's secret and user from this node's applied metadata (a revocation applies within a heartbeat). */
  lookupKey: LookupKey
  /**
   * Root domains of virtual-host-style requests: `BUCKET.DOMAIN` names bucket BUCKET. Requests to
   * any other host are path-style.
   */
  domains?: string[]
  /** Region answered by GetBucketLocation (signatures of any region are accepted). */
  region?: string
  /** When the cluster was created: the creation time ListBuckets shows (directories keep none). */
  createdAtMs?: () => number
}

/** A request being served, as handlers see it. */
export interface S3Context {
  req: IncomingMessage
  res: ServerResponse
  method: string
  bucket: string | undefined
  /** The object key, decoded; undefined for service and bucket requests. */
  key: string | undefined
  query: URLSearchParams
  auth: Authenticated
  sig: SigV4Request
  /** The FileService calls, as the key's user, through every RPC interceptor. */
  rpc: LocalRpc
  /** Ends when the client goes away. */
  signal: AbortSignal
  requestId: string
  region: string
  createdAtMs: number
  /** The request's content bytes, verified as they stream (signatures, SHA-256, MD5, checksums). */
  body: () => AsyncGenerator<Uint8Array>
  /** The whole (small) body, at most `bytesMax` bytes (EntityTooLarge past it). */
  smallBody: (bytesMax: number) => Promise<Buffer>
}

export type Route = (ctx: S3Context) => Promise<void>

/**
 * The S3 API of one node: an HTTP listener whose requests are authenticated by Signature V4 against
 * the cluster's S3 keys, then served as FileService calls of the RPC contract made in this process
 * as the key's user (RpcServer.invokeLocal), so authorization, tenants, quotas, rate limits and the
 * audit log apply to S3 exactly as to `dfs fs`. Any node serves any bucket.
 */
export class S3Gateway {
  readonly #init: S3GatewayInit
  #server: Server | undefined
  #inFlight = 0

  constructor (init: S3GatewayInit) {
    this.#init = init
  }

  /** The address it listens on, once started. */
  get address (): { host: string, port: number } {
    const a = this.#server?.address()
    if (a == null || typeof a === 'string') throw new Error('the S3 gateway is not listening')
    return { host: a.address, port: a.port }
  }

  async start (): Promise<void> {
    const server = createServer({
      maxHeaderSize: S3_HEADER_BYTES_MAX,
      headersTimeout: S3_HEADERS_TIMEOUT_MS,
      requestTimeout: 0,
      keepAliveTimeout: 5_000
    }, (req, res) => { void this.#serve(req, res) })
    server.setTimeout(S3_IDLE_TIMEOUT_MS, (socket) => { socket.destroy() })
    server.listen(this.#init.port, this.#init.host)
    await once(server, 'listening')
    this.#server = server
    log('listening on %s:%d', this.address.host, this.address.port)
  }

  async stop (): Promise<void> {
    const server = this.#server
    if (server === undefined) return
    this.#server = undefined
    const closed = new Promise<void>((resolve) => { server.close(() => { resolve() }) })
    server.closeAllConnections()
    await closed
  }

  async #serve (req: IncomingMessage, res: ServerResponse): Promise<void> {
    const requestId = newRequestId()
    res.setHeader('x-amz-request-id', requestId)
    res.setHeader('server', 'dfs')
    const url = req.url ?? '/'
    const q = url.indexOf('?')
    const rawPath = q < 0 ? url : url.slice(0, q)
    const rawQuery = q < 0 ? '' : url.slice(q + 1)
    const gone = new AbortController()
    const onClose = (): void => { if (!res.writableFinished) gone.abort(s3Error('IncompleteBody', 'the client went away')) }
    res.once('close', onClose)
    if (this.#inFlight >= S3_REQUESTS_IN_FLIGHT_MAX) {
      sendError(req, res, s3Error('SlowDown', 'Please reduce your request rate.'), requestId, rawPath)
      req.resume()
      return
    }
    this.#inFlight++
    try {
      const sig: SigV4Request = { method: req.method ?? 'GET', rawPath, rawQuery, headers: req.headers }
      const { bucket, key } = this.#target(req, rawPath)
      const auth = await authenticate(sig, this.#init.lookupKey)
      const ctx: S3Context = {
        req,
        res,
        method: sig.method,
        bucket,
        key,
        query: new URLSearchParams(rawQuery),
        auth,
        sig,
        rpc: new LocalRpc(this.#init.rpc, auth.user),
        signal: gone.signal,
        requestId,
        region: this.#init.region ?? 'us-east-1',
        createdAtMs: this.#init.createdAtMs?.() ?? 0,
        // a refused body leaves the socket open: what is left is drained (below) so the error reaches the client
        body: () => verifiedBody(req.iterator({ destroyOnReturn: false }), bodyChecks(sig, auth)),
        smallBody: async (bytesMax) => await readAll(verifiedBody(req.iterator({ destroyOnReturn: false }), bodyChecks(sig, auth)), bytesMax)
      }
      const route = key !== undefined ? objectRoutes(ctx) : bucketRoutes(ctx)
      await route(ctx)
    } catch (err) {
      const e = err instanceof S3Error ? err : toS3Error(err)
      if (e.code === 'InternalError') log.error('%s %s: %s', req.method, rawPath, (err as Error)?.stack ?? err)
      else log('%s %s: %s %s', req.method, rawPath, e.code, e.message)
      sendError(req, res, e, requestId, rawPath)
      // what is left of the body is read and dropped, so the answer reaches the client
      if (!req.complete) req.resume()
    } finally {
      this.#inFlight--
      res.off('close', onClose)
    }
  }

  /** The bucket and key a request names: virtual-host style when its Host is under a root domain, else path style. */
  #target (req: IncomingMessage, rawPath: string): { bucket: string | undefined, key: string | undefined } {
    if (!rawPath.startsWith('/')) throw s3Error('InvalidRequest', 'the request target must be a path')
    let path: string
    try {
      path = decodeURIComponent(rawPath)
    } catch {
      throw s3Error('InvalidRequest', 'the request path is not valid percent-encoded UTF-8')
    }
    const host = (header(req, 'host') ?? '').replace(/:\d+$/, '').toLowerCase()
    for (const domain of this.#init.domains ?? []) {
      if (host.endsWith(`.${domain}`)) {
        const bucket = requireBucketName(host.slice(0, -domain.length - 1))
        const key = path.slice(1)
        return { bucket, key: key === '' ? undefined : key }
      }
    }
    const slash = path.indexOf('/', 1)
    const name = slash < 0 ? path.slice(1) : path.slice(1, slash)
    if (name === '') return { bucket: undefined, key: undefined }
    const key = slash < 0 ? '' : path.slice(slash + 1)
    return { bucket: requireBucketName(name), key: key === '' ? undefined : key }
  }
}

/** Reads a body whole, refusing more than `bytesMax` bytes. */
async function readAll (body: AsyncIterable<Uint8Array>, bytesMax: number): Promise<Buffer> {
  const parts: Uint8Array[] = []
  let n = 0
  for await (const chunk of body) {
    n += chunk.byteLength
    if (n > bytesMax) throw s3Error('EntityTooLarge', `this request's body may be at most ${bytesMax} bytes`)
    parts.push(chunk)
  }
  return Buffer.concat(parts)
}

/** Whether a dfs error is NotFound (for handlers that tell a missing bucket from a missing key). */
export function notFound (err: unknown): boolean {
  return isError(err, 'NotFound')
}
