/**
 * The status page of one node (`dfs node start --http-listen HOST:PORT`): a read-only view of the
 * cluster for a browser.
 *
 *   GET /              the page (HTML with its style and script inline: no external network)
 *   GET /favicon.svg   its icon
 *   GET /api/overview  the ClusterOverview as JSON
 *   GET /api/stream    server-sent events: `event: overview` with the overview, every refresh
 *   GET /metrics       Prometheus metrics, when the node also runs them (--metrics-listen)
 *
 * Access: the page has no login. It shows what `dfs cluster top` shows a ReadOnly user (names,
 * regions, PeerIds, health, fill, groups, replication figures), never a secret (no token, no key,
 * no file content); audit entries (callers and the paths they named) only when the node was started
 * with --http-audit. It listens on loopback unless told otherwise, and on loopback it answers only
 * requests whose Host is a loopback name, so a web page elsewhere cannot read it through DNS
 * rebinding. Anyone who can reach a non-loopback listener can read it: put it behind a firewall or
 * an authenticating proxy then.
 *
 * Live refresh is server-sent events rather than polling: one overview is gathered per refresh
 * while anyone watches, whatever the number of browsers (at most `streamClientsMax`, beyond them
 * 503), and a browser's EventSource reconnects by itself after the node restarts.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import { isIP } from 'node:net'
import { logger } from '@libp2p/logger'
import type { Registry } from 'prom-client'
import type { ClusterOverview } from '@dfs/api'
import { listenHttp, listeningAt } from './http-listener.js'
import { STATUS_PAGE_CSP, STATUS_PAGE_HTML, STATUS_PAGE_ICON } from './status-page-assets.js'

const log = logger('dfs:node:status-page')

/** Browsers that may follow /api/stream at once (beyond: 503). */
export const STATUS_STREAM_CLIENTS_MAX = 32
/** How often the overview is pushed to the browsers that follow it. */
export const STATUS_REFRESH_MS = 1000
/** An overview at most this old answers GET /api/overview without gathering a new one. */
const OVERVIEW_REUSE_MS = 500
/** Longest one overview may take to gather (it bounds its own slow part; this bounds the rest). */
const OVERVIEW_TIMEOUT_MS = 10_000
/** A browser that has this many bytes of events unread is too slow to follow: it is disconnected. */
const STREAM_BACKLOG_BYTES_MAX = 1024 * 1024
/** Connections the listener keeps at once (streams, page loads, scrapes). */
const CONNECTIONS_MAX = STATUS_STREAM_CLIENTS_MAX * 2 + 16
/** How long a browser waits before it reconnects to a stream that ended. */
const STREAM_RETRY_MS = 2000

export interface StatusPageInit {
  /** Gathers the overview the page shows (with or without audit entries: the node's choice). */
  overview: (options: { signal: AbortSignal }) => Promise<ClusterOverview>
  /** Prometheus registry served at /metrics; absent: /metrics is 404. */
  metrics?: Pick<Registry, 'metrics' | 'contentType'>
  streamClientsMax?: number
  refreshMs?: number
}

const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '::1', '[::1]'])

/** Whether `host` (a listen address) is loopback. */
function isLoopback (host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\./.test(host)
}

/** The host name of a Host header, without its port. */
function hostOf (header: string): string {
  const h = header.trim().toLowerCase()
  if (h.startsWith('[')) return h.slice(0, h.indexOf(']') + 1)
  const colon = h.lastIndexOf(':')
  return colon === -1 ? h : h.slice(0, colon)
}

const SECURITY_HEADERS = {
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'cache-control': 'no-store'
}

export class StatusPage {
  readonly #init: StatusPageInit
  readonly #streamClientsMax: number
  readonly #refreshMs: number
  /** Browsers following /api/stream. Invariant: size ≤ streamClientsMax. */
  readonly #streams = new Set<ServerResponse>()
  #server: Server | undefined
  #loopbackOnly = false
  #ticker: ReturnType<typeof setInterval> | undefined
  /** The overview being gathered, if any: every caller meanwhile shares it. */
  #gathering: Promise<ClusterOverview> | undefined
  #latest: { at: number, overview: ClusterOverview } | undefined
  readonly #stopping = new AbortController()

  constructor (init: StatusPageInit) {
    this.#init = init
    this.#streamClientsMax = init.streamClientsMax ?? STATUS_STREAM_CLIENTS_MAX
    this.#refreshMs = init.refreshMs ?? STATUS_REFRESH_MS
  }

  async start (listen: { host: string, port: number }): Promise<void> {
    this.#loopbackOnly = isLoopback(listen.host)
    this.#server = await listenHttp(listen, (req, res) => { this.#serve(req, res) }, { connectionsMax: CONNECTIONS_MAX })
  }

  get address (): { host: string, port: number } {
    return listeningAt(this.#server, 'the status page')
  }

  async stop (): Promise<void> {
    this.#stopping.abort()
    this.#stopTicker()
    for (const res of this.#streams) res.end()
    this.#streams.clear()
    const server = this.#server
    this.#server = undefined
    if (server === undefined) return
    server.closeAllConnections()
    await new Promise<void>((resolve) => { server.close(() => { resolve() }) })
  }

  /** One overview for everyone asking now (a fresh one unless `reuse` and the last is recent enough). */
  async #overview (reuse: boolean): Promise<ClusterOverview> {
    const latest = this.#latest
    if (reuse && latest !== undefined && Date.now() - latest.at < OVERVIEW_REUSE_MS) return latest.overview
    this.#gathering ??= (async () => {
      try {
        const signal = AbortSignal.any([this.#stopping.signal, AbortSignal.timeout(OVERVIEW_TIMEOUT_MS)])
        const overview = await this.#init.overview({ signal })
        this.#latest = { at: Date.now(), overview }
        return overview
      } finally {
        this.#gathering = undefined
      }
    })()
    return await this.#gathering
  }

  #serve (req: IncomingMessage, res: ServerResponse): void {
    if (this.#loopbackOnly && !LOOPBACK_HOSTS.has(hostOf(req.headers.host ?? '')) && isIP(hostOf(req.headers.host ?? '')) === 0) {
      // a loopback listener answers loopback names only (DNS rebinding: see the header comment)
      this.#text(res, 421, 'this status page answers requests for localhost only\n')
      return
    }
    const path = (req.url ?? '/').split('?')[0]
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { ...SECURITY_HEADERS, allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8' }).end('only GET\n')
      return
    }
    switch (path) {
      case '/':
      case '/index.html':
        res.writeHead(200, { ...SECURITY_HEADERS, 'content-type': 'text/html; charset=utf-8', 'content-security-policy': STATUS_PAGE_CSP })
        res.end(req.method === 'HEAD' ? undefined : STATUS_PAGE_HTML)
        return
      case '/favicon.svg':
      case '/favicon.ico':
        res.writeHead(200, { ...SECURITY_HEADERS, 'content-type': 'image/svg+xml', 'cache-control': 'max-age=86400' })
        res.end(req.method === 'HEAD' ? undefined : STATUS_PAGE_ICON)
        return
      case '/api/overview':
        void this.#overviewJson(req, res)
        return
      case '/api/stream':
        this.#stream(req, res)
        return
      case '/metrics':
        void this.#metrics(req, res)
        return
      default:
        this.#text(res, 404, 'not found: the status page is at /, its data at /api/overview and /api/stream\n')
    }
  }

  #text (res: ServerResponse, status: number, text: string): void {
    res.writeHead(status, { ...SECURITY_HEADERS, 'content-type': 'text/plain; charset=utf-8' }).end(text)
  }

  async #overviewJson (req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      const body = JSON.stringify(await this.#overview(true))
      res.writeHead(200, { ...SECURITY_HEADERS, 'content-type': 'application/json; charset=utf-8' })
      res.end(req.method === 'HEAD' ? undefined : body)
    } catch (err) {
      log.error('gathering the overview failed: %s', (err as Error).message)
      if (!res.headersSent) this.#text(res, 503, 'the overview is not available now\n')
    }
  }

  async #metrics (req: IncomingMessage, res: ServerResponse): Promise<void> {
    const registry = this.#init.metrics
    if (registry === undefined) {
      this.#text(res, 404, 'this node serves no metrics: start it with --metrics-listen\n')
      return
    }
    try {
      const text = await registry.metrics()
      res.writeHead(200, { 'content-type': registry.contentType })
      res.end(req.method === 'HEAD' ? undefined : text)
    } catch (err) {
      log.error('collecting metrics failed: %s', (err as Error).message)
      this.#text(res, 500, 'collecting metrics failed\n')
    }
  }

  #stream (req: IncomingMessage, res: ServerResponse): void {
    if (this.#streams.size >= this.#streamClientsMax) {
      res.writeHead(503, { ...SECURITY_HEADERS, 'retry-after': '10', 'content-type': 'text/plain; charset=utf-8' })
        .end(`too many browsers follow this status page (at most ${this.#streamClientsMax})\n`)
      return
    }
    res.writeHead(200, { ...SECURITY_HEADERS, 'content-type': 'text/event-stream; charset=utf-8', connection: 'keep-alive' })
    if (req.method === 'HEAD') { res.end(); return }
    res.write(`retry: ${STREAM_RETRY_MS}\n\n`)
    this.#streams.add(res)
    const gone = (): void => {
      this.#streams.delete(res)
      if (this.#streams.size === 0) this.#stopTicker()
    }
    res.on('close', gone)
    req.socket.setKeepAlive(true)
    // the first event at once (a recent overview will do), then one per refresh
    void this.#overview(true).then((o) => { this.#send(res, o) }, (err: Error) => { log('first overview of a stream: %s', err.message) })
    this.#ticker ??= setInterval(() => { void this.#tick() }, this.#refreshMs)
  }

  #stopTicker (): void {
    if (this.#ticker !== undefined) clearInterval(this.#ticker)
    this.#ticker = undefined
  }

  async #tick (): Promise<void> {
    // a refresh that is still gathering is not doubled: the next tick sends what it gathers
    if (this.#gathering !== undefined) return
    let overview: ClusterOverview
    try {
      overview = await this.#overview(false)
    } catch (err) {
      log('refresh: %s', (err as Error).message)
      return
    }
    for (const res of this.#streams) this.#send(res, overview)
  }

  #send (res: ServerResponse, overview: ClusterOverview): void {
    if (res.writableEnded || res.destroyed) return
    if (res.writableLength > STREAM_BACKLOG_BYTES_MAX) {
      log('a stream reader is %d bytes behind: disconnected', res.writableLength)
      res.destroy()
      return
    }
    // JSON.stringify escapes line breaks inside strings: the data is one line, as an event's field must be
    res.write(`event: overview\ndata: ${JSON.stringify(overview)}\n\n`)
  }
}
