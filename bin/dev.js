#!/usr/bin/env -S node --import tsx --conditions=dfs-source
// Runs the CLI from TypeScript sources (no build needed).
import './polyfill.js'
import { execute } from '@oclif/core/execute'

await execute({ development: true, dir: import.meta.url })
