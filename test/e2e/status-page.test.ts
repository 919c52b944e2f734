import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { existsSync } from 'node:fs'
import { randomBytes } from 'node:crypto'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { request, type IncomingMessage } from 'node:http'
import { join } from 'node:path'
import { ROOT, Sandbox, waitFor, type NodeHandle } from './harness.js'

/**
 * The status page (`--http-listen`) of a three-node cluster of real processes, loaded in headless
 * Chromium as an operator would: it lists the nodes Healthy with a leader for every group, and
 * without a reload (server-sent events) shows a node killed with SIGKILL as Suspected, then Failed.
 * A screenshot is saved as test-artifacts/status-page.png. Skipped when Debian's chromium is not
 * installed (CI installs it: .ci/run).
 */
const test = suite('e2e: status page in headless Chromium')
const CHROMIUM = '/usr/bin/chromium'
// Suspected after two silent heartbeats (1 s), Failed after 6 s: the page, refreshed every second, sees both
const FAST = ['--heartbeat-ms', '500', '--failure-timeout-ms', '6000', '--extent-size', String(1024 * 1024), '--http-listen', '127.0.0.1:0']
const ARTIFACTS = join(ROOT, 'test-artifacts')

let sb: Sandbox
const nodes: NodeHandle[] = []
let page0 = ''

test.before(async () => { sb = await Sandbox.create() })
test.after(async () => {
  for (const n of nodes) await n.stop()
  await sb.cleanup()
})

/** A GET of the status page with an arbitrary Host header (fetch does not let a caller set one). */
async function get (path: string, headers: Record<string, string> = {}): Promise<IncomingMessage> {
  const [host, port] = [page0.slice(0, page0.lastIndexOf(':')), Number(page0.slice(page0.lastIndexOf(':') + 1))]
  return await new Promise((resolve, reject) => {
    request({ host, port, path, headers }, resolve).on('error', reject).end()
  })
}

test('three nodes, each serving its status page; the listener is in node.json', async () => {
  nodes.push(await sb.startNode({ args: ['--name', 'n1', ...FAST] }))
  const t = (await sb.run(['cluster', 'token', 'create', '--uses', '2', '--json', '--node', nodes[0].addr])).json
  // n2 shows audit entries on its page (--http-audit); the others do not
  for (const name of ['n2', 'n3']) {
    nodes.push(await sb.startNode({ args: ['--name', name, '--peers', nodes[0].addr, '--join-token', t.token, ...FAST, ...(name === 'n2' ? ['--http-audit'] : [])] }))
  }
  const pages = await Promise.all(nodes.map(async (n) => JSON.parse(await readFile(join(n.dataDir, 'node.json'), 'utf8')).http as string))
  for (const p of pages) assert.match(p, /^127\.0\.0\.1:\d+$/)
  page0 = pages[0]
  const o = await waitFor(async () => {
    const r: any = await (await fetch(`http://${page0}/api/overview`)).json()
    return r.nodes.length === 3 && r.nodes.every((n: any) => n.health === 'healthy') && r.groups.every((g: any) => g.leader !== null) ? r : undefined
  }, 30_000, 'three healthy nodes and a leader of every group in /api/overview')
  assert.is(o.nodesTotal, 3)
  assert.equal(o.nodes.map((n: any) => n.name), ['n1', 'n2', 'n3'])
  assert.ok(o.nodes[0].self)
  assert.is(o.audit, null, 'no audit entries without --http-audit')
  // a file, so that the page has copies to show (three of each extent, one per node)
  const local = join(sb.dir, 'f.bin')
  await writeFile(local, randomBytes(3 * 1024 * 1024 + 5))
  const put = await sb.run(['fs', 'put', local, '/docs/f.bin', '--json', '--node', nodes[0].addr])
  assert.is(put.code, 0, put.stderr)
  // the page shows n1's applied metadata: the put's group may be led elsewhere and applied here a moment later
  const after: any = await waitFor(async () => {
    const r: any = await (await fetch(`http://${page0}/api/overview`)).json()
    return r.replication.extents === put.json.extents && r.nodes.every((n: any) => n.copies === put.json.extents) ? r : undefined
  }, 10_000, 'the put\'s extents on the page')
  assert.is(after.replication.extents, put.json.extents)
  for (const n of after.nodes) assert.is(n.copies, put.json.extents, `${n.name} holds a copy of every extent`)
  const withAudit: any = await waitFor(async () => {
    const r: any = await (await fetch(`http://${pages[1]}/api/overview`)).json()
    return r.audit?.some((e: any) => e.operation === 'fs.put.encoded' && e.resource === '/docs/f.bin') === true ? r : undefined
  }, 10_000, 'the put in the audit entries of n2\'s page')
  assert.ok(withAudit.audit.length <= 20)
  assert.not.ok('hash' in withAudit.audit[0], 'entries without their hash')
})

test('the page is one self-contained document; other paths, methods and hosts are refused', async () => {
  const res = await fetch(`http://${page0}/`)
  assert.is(res.status, 200)
  assert.match(res.headers.get('content-type') ?? '', /^text\/html/)
  const csp = res.headers.get('content-security-policy') ?? ''
  assert.match(csp, /default-src 'none'/)
  assert.match(csp, /connect-src 'self'/)
  const html = await res.text()
  assert.not.match(html, /(src|href)=["']?https?:/, 'no external asset')
  assert.is((await fetch(`http://${page0}/nothing`)).status, 404)
  assert.is((await fetch(`http://${page0}/api/overview`, { method: 'POST' })).status, 405)
  // without --metrics-listen there are no metrics here either
  assert.is((await fetch(`http://${page0}/metrics`)).status, 404)
  // a loopback listener answers loopback names only (a DNS-rebound name is refused)
  const rebound = await get('/api/overview', { host: `evil.example:${page0.split(':')[1]}` })
  rebound.resume()
  assert.is(rebound.statusCode, 421)
  const local = await get('/api/overview', { host: `localhost:${page0.split(':')[1]}` })
  local.resume()
  assert.is(local.statusCode, 200)
})

test('at most 32 browsers follow the stream; the next one gets 503', async () => {
  const streams: IncomingMessage[] = []
  try {
    for (let i = 0; i < 32; i++) {
      const s = await get('/api/stream')
      assert.is(s.statusCode, 200, `stream ${i + 1}`)
      assert.match(String(s.headers['content-type']), /^text\/event-stream/)
      streams.push(s)
    }
    // a stream carries overviews as events
    const first = await new Promise<string>((resolve) => {
      let text = ''
      streams[0].setEncoding('utf8').on('data', (d: string) => { text += d; if (text.includes('\n\n') && text.includes('event: overview')) resolve(text) })
    })
    const data = first.split('\n').find((l) => l.startsWith('data: '))
    assert.is(JSON.parse(data?.slice(6) ?? '{}').nodes.length, 3)
    const refused = await get('/api/stream')
    refused.resume()
    assert.is(refused.statusCode, 503)
  } finally {
    for (const s of streams) s.destroy()
  }
  // once they are gone, a browser is let in again
  await waitFor(async () => {
    const s = await get('/api/stream')
    s.destroy()
    return s.statusCode === 200 ? true : undefined
  }, 5000, 'a stream slot to free up')
})

test('headless Chromium: 3 nodes Healthy with leaders; a killed node turns Suspected, then Failed, without a reload', async () => {
  const { chromium } = await import('playwright-core')
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] })
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } })
    const problems: string[] = []
    const foreign: string[] = []
    page.on('console', (m) => { if (m.type() === 'error') problems.push(m.text()) })
    page.on('pageerror', (e) => { problems.push(e.message) })
    page.on('request', (r) => { if (!r.url().startsWith(`http://${page0}/`)) foreign.push(r.url()) })
    await page.goto(`http://${page0}/`)
    const health = async (name: string): Promise<string> => await page.locator(`#nodes tr[data-node="${name}"] td.health .badge`).innerText()
    // (a locator, not waitForFunction: the page's CSP forbids the eval a string predicate needs)
    await waitFor(async () => await page.locator('#nodes tr[data-node]').count() === 3 ? true : undefined, 15_000, 'three nodes on the page')
    for (const n of ['n1', 'n2', 'n3']) assert.is(await health(n), 'Healthy', n)
    const leader = await page.locator('#groups tr[data-group="0"] td.leader').innerText()
    assert.ok(['n1', 'n2', 'n3'].includes(leader), `group 0 is led by a node (${leader})`)
    assert.match(await page.locator('#live').getAttribute('class') ?? '', /\bok\b/)
    // the page says why it shows no audit entries
    assert.match(await page.locator('#audit').innerText(), /--http-audit/)
    await mkdir(ARTIFACTS, { recursive: true })
    await page.screenshot({ path: join(ARTIFACTS, 'status-page-healthy.png'), fullPage: true })

    await nodes[2].stop('SIGKILL')
    const badge = '#nodes tr[data-node="n3"] td.health .badge'
    await page.locator(badge, { hasText: /^Suspected$/ }).waitFor({ timeout: 10_000 })
    await page.locator(badge, { hasText: /^Failed$/ }).waitFor({ timeout: 15_000 })
    for (const n of ['n1', 'n2']) assert.is(await health(n), 'Healthy', n)
    await page.screenshot({ path: join(ARTIFACTS, 'status-page.png'), fullPage: true })
    assert.equal(problems, [], 'no script error and no CSP violation')
    assert.equal(foreign, [], 'no request leaves the node')
  } finally {
    await browser.close()
  }
  nodes.pop()
})

if (existsSync(CHROMIUM)) {
  test.run()
} else {
  console.log(`e2e: status page: SKIPPED: ${CHROMIUM} is not installed (apt-get install chromium)`)
}
