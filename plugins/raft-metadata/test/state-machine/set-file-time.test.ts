import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import type { MetadataOp, MetadataResult } from '@dfs/api'
import { MetadataStateMachine } from '../../src/state-machine/index.js'
import { extent, putFile } from './fixtures.js'

const test = suite('state machine: SetFileTime')

test('sets a file\'s mtime and nothing else; refusals are typed and change nothing; a snapshot keeps it', () => {
  const sm = new MetadataStateMachine()
  let index = 0
  const apply = (op: unknown): MetadataResult => sm.apply(op as MetadataOp, ++index)
  assert.ok(apply(putFile('/d/f', [extent(1)], 100)).ok)
  const r = apply({ type: 'SetFileTime', path: '/d/f', mtimeMs: 5 })
  assert.equal(r.ok && r.file, { path: '/d/f', size: 10, mtimeMs: 5, version: 1, extents: [extent(1).id] })
  const name = (x: MetadataResult): string | undefined => x.ok ? undefined : x.error.name
  assert.is(name(apply({ type: 'SetFileTime', path: '/d', mtimeMs: 5 })), 'IsADirectory')
  assert.is(name(apply({ type: 'SetFileTime', path: '/d/none', mtimeMs: 5 })), 'NotFound')
  assert.is(name(apply({ type: 'SetFileTime', path: '/d/f', mtimeMs: -1 })), 'InvalidArgument')
  assert.is(name(apply({ type: 'SetFileTime', path: '/d/f', mtimeMs: 1.5 })), 'InvalidArgument')
  assert.is(sm.getFile('/d/f')?.mtimeMs, 5)
  assert.is(MetadataStateMachine.restore(sm.snapshot()).getFile('/d/f')?.mtimeMs, 5)
})

test.run()
