import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { createHash } from 'node:crypto'
import {
  DATA_GROUPS_MAX, SHARD_COUNT, groupOfShard, requireDataGroups, shardOfExtent, shardOfPath, shardsOfGroup
} from '../../src/shards/index.js'
import { throwsNamed } from '../throws-named.js'

test('a path hashes by its first segment only, independent of how it is written', () => {
  const s = shardOfPath('/photos/2024/a.jpg')
  assert.is(shardOfPath('/photos'), s)
  assert.is(shardOfPath('/photos/x/y/z'), s)
  assert.is(shardOfPath('photos/2024/'), s, 'canonicalised first')
  // pinned to SHA-256 so the placement of persisted keys never changes between versions
  assert.is(s, createHash('sha256').update('p:photos').digest()[0])
  throwsNamed(() => shardOfPath('/'), 'InvalidArgument')
  throwsNamed(() => shardOfPath('/a/../..'), 'InvalidArgument')
})

test('keys spread over all 256 shards', () => {
  const seen = new Set<number>()
  for (let i = 0; i < 5000; i++) {
    const s = shardOfPath(`/bucket-${i}/f`)
    assert.ok(Number.isInteger(s) && s >= 0 && s < SHARD_COUNT)
    seen.add(s)
    seen.add(shardOfExtent(`00000000-0000-4000-8000-${i.toString(16).padStart(12, '0')}`))
  }
  assert.is(seen.size, SHARD_COUNT)
})

test('every shard belongs to exactly one group, in contiguous near-equal ranges', () => {
  for (let groups = 1; groups <= DATA_GROUPS_MAX; groups++) {
    const all: number[] = []
    const sizes: number[] = []
    for (let g = 1; g <= groups; g++) {
      const shards = shardsOfGroup(g, groups)
      sizes.push(shards.length)
      for (let i = 1; i < shards.length; i++) assert.is(shards[i], shards[i - 1] + 1, 'contiguous')
      for (const s of shards) assert.is(groupOfShard(s, groups), g)
      all.push(...shards)
    }
    assert.equal(all, Array.from({ length: SHARD_COUNT }, (_, i) => i), `groups=${groups} covers every shard once`)
    assert.ok(Math.max(...sizes) - Math.min(...sizes) <= 1, `groups=${groups} balanced: ${sizes.join(',')}`)
  }
})

test('the number of data groups is validated', () => {
  assert.is(requireDataGroups(3), 3)
  for (const bad of [0, -1, 1.5, DATA_GROUPS_MAX + 1, Number.NaN]) throwsNamed(() => requireDataGroups(bad), 'InvalidArgument')
})

test.run()
