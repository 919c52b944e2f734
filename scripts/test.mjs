#!/usr/bin/env node
// Runs every uvu test of the core and the plugins, tier by tier, and ends with the line CI reads:
// `N passed, N failed`. Each tier runs in its own uvu process; a tier that crashes before printing
// its totals counts as one failure.
//
//   npm test                 all tiers
//   npm test -- unit         only tiers whose name contains "unit"
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { dirname, resolve } from 'node:path'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const uvu = resolve(root, 'node_modules/uvu/bin.js')
const nodeArgs = ['--import', './bin/polyfill.js', '--import', 'tsx', '--conditions=dfs-source']

// [name, uvu dir, pattern]
const tiers = [
  ['unit', '.', '^(test/(?!e2e/)|plugins/[^/]+/test/).*\\.test\\.ts$'],
  ['e2e', 'test/e2e', '\\.test\\.ts$']
]

const only = process.argv.slice(2)
const selected = tiers.filter(([name]) => only.length === 0 || only.some((o) => name.includes(o)))

let passed = 0
let failed = 0
for (const [name, dir, pattern] of selected) {
  process.stdout.write(`\n=== ${name} ===\n`)
  const { code, out } = await run(process.execPath, [...nodeArgs, uvu, dir, pattern, '-i', 'dist', '-i', 'node_modules'])
  // eslint-disable-next-line no-control-regex
  const text = out.replace(/\x1b\[[0-9;]*m/g, '')
  const total = Number(/Total:\s+(\d+)/.exec(text)?.[1] ?? NaN)
  const ok = Number(/Passed:\s+(\d+)/.exec(text)?.[1] ?? NaN)
  const skipped = Number(/Skipped:\s+(\d+)/.exec(text)?.[1] ?? 0)
  if (Number.isNaN(total) || Number.isNaN(ok)) {
    failed += 1
    process.stdout.write(`tier ${name} exited ${code} without totals\n`)
    continue
  }
  passed += ok
  failed += Math.max(total - ok - skipped, code === 0 ? 0 : 1)
}
process.stdout.write(`\n${passed} passed, ${failed} failed\n`)
process.exit(failed === 0 ? 0 : 1)

function run (cmd, args) {
  return new Promise((resolveRun) => {
    const child = spawn(cmd, args, { cwd: root, stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, FORCE_COLOR: '0' } })
    let out = ''
    child.stdout.on('data', (chunk) => { out += chunk; process.stdout.write(chunk) })
    child.on('close', (code) => resolveRun({ code, out }))
  })
}
