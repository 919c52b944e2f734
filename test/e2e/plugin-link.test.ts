import { execFile } from 'node:child_process'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { ROOT, Sandbox } from './harness.js'

const test = suite('e2e: a policy plugin installed with dfs plugins link')

const PLUGIN = join(ROOT, 'plugins', 'placement-region')

/**
 * Fills a ServiceRegistry the way `dfs node start` does — oclif's Config for the built CLI, then the
 * `dfs:services` hook of every plugin, linked ones included — in a process with the sandbox's
 * HOME and XDG dirs, where `dfs plugins link` records its links. Returns the names per kind.
 */
async function installedServices (sb: Sandbox): Promise<{ region: string[] | null, placement: string[], rebalance: string[], failures: string[] }> {
  const script = `
    import { Config } from '@oclif/core'
    import { ServiceRegistry, SERVICES_HOOK } from '@dfs/api'
    const config = await Config.load({ root: ${JSON.stringify(ROOT)} })
    const registry = new ServiceRegistry()
    const hook = await config.runHook(SERVICES_HOOK, { registry })
    // what the linked code answers, to show it runs and not only registers
    const logger = Object.assign(() => {}, { error: () => {}, trace: () => {}, enabled: false })
    const node = (id, region) => ({ id, region, health: 'healthy', usedBytes: 0, capacityBytes: 1024, fillLimit: 1 })
    const request = { extent: { id: 'x', size: 1, replicas: ['a1'] }, replicationFactor: 3, nodes: [node('a1', 'a'), node('a2', 'a'), node('b1', 'b')] }
    const region = registry.names('placement').includes('region') ? registry.get('placement', 'region')({ logger }).place(request) : null
    process.stdout.write(JSON.stringify({
      region,
      placement: registry.names('placement'),
      rebalance: registry.names('rebalance'),
      failures: hook.failures.map((f) => f.plugin.name + ': ' + f.error.message)
    }))`
  const { stdout } = await promisify(execFile)(process.execPath, ['--import', join(ROOT, 'bin', 'polyfill.js'), '--input-type=module', '-e', script], {
    cwd: ROOT, env: sb.env, timeout: 60_000
  })
  return JSON.parse(stdout)
}

let sb: Sandbox

test.before(async () => { sb = await Sandbox.create() })
test.after(async () => { await sb.cleanup() })

test('placement "region" is provided after dfs plugins link and gone after unlink; the core is unchanged', async () => {
  const before = await installedServices(sb)
  assert.equal(before, { region: null, placement: ['default'], rebalance: ['default'], failures: [] })

  const link = await sb.run(['plugins', 'link', PLUGIN])
  assert.is(link.code, 0, link.stderr)
  const listed = await sb.run(['plugins', '--json'])
  assert.is(listed.code, 0, listed.stderr)
  const entry = (listed.json as Array<{ name: string, type: string, root: string }>).find((p) => p.name === '@dfs/placement-region')
  assert.ok(entry != null, 'dfs plugins does not list @dfs/placement-region')
  assert.is(entry.type, 'link')
  assert.is(entry.root, PLUGIN)

  const linked = await installedServices(sb)
  // RF 3 with a copy in region a: the region policy adds region b first, then a's other node
  assert.equal(linked, { region: ['b1', 'a2'], placement: ['default', 'region'], rebalance: ['default'], failures: [] })

  const unlink = await sb.run(['plugins', 'unlink', '@dfs/placement-region'])
  assert.is(unlink.code, 0, unlink.stderr)
  assert.equal(await installedServices(sb), before)
})

test.run()
