#!/usr/bin/env node
// uvu 0.5.6's reporter formats a failed test's `err.details` with `.split('\n')`, assuming the string
// its own assertions attach. dfs errors carry `details` as an object (their evidence), so a test
// that failed with a DfsError crashed the reporter: the failure vanished from the output and the
// suite stopped with exit code 0. This postinstall step makes the reporter print such details as
// JSON. It is idempotent and fails loudly if uvu changed shape, so an upgrade cannot drop it.
import { readFileSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..', 'node_modules', 'uvu')
const MARK = '/* dfs: details may be an object */'
const BROKEN = "\tif (details) str += GUTTER + details.split('\\n').join(GUTTER);"
const FIXED = `\tif (details && typeof details !== 'string') details = JSON.stringify(details, null, 2); ${MARK}\n${BROKEN}`
for (const file of ['dist/index.mjs', 'dist/index.js']) {
  const path = join(root, file)
  const text = readFileSync(path, 'utf8')
  if (text.includes(MARK)) continue
  if (!text.includes(BROKEN)) {
    console.error(`patch-uvu: ${path} does not have the expected reporter line; check the uvu version`)
    process.exit(1)
  }
  writeFileSync(path, text.replace(BROKEN, FIXED))
}
