import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { MetadataStateMachine } from '../../src/state-machine/index.js'
import { groupOfShard, shardOfExtent, shardOfPath } from '../../src/shards/index.js'
import { extent, member, putFile, uuid } from './fixtures.js'
import { throwsNamed } from '../throws-named.js'

const GROUPS = 3
const data = (group: number): MetadataStateMachine => new MetadataStateMachine({ kind: 'data', group, groups: GROUPS })

/** A top-level name whose shard is owned by `group` (of GROUPS). */
function nameIn (group: number): string {
  for (let i = 0; ; i++) if (groupOfShard(shardOfPath(`/d${i}`), GROUPS) === group) return `d${i}`
}

test('the system group takes cluster, member, role and token operations only', () => {
  const sm = new MetadataStateMachine({ kind: 'system' })
  assert.is(sm.apply({ type: 'InitCluster', clusterId: 'c', createdAtMs: 1, admin: 'a', member: member('n1'), metadataGroups: 3 }, 1).ok, true)
  assert.is(sm.cluster()?.metadataGroups, 3)
  assert.is(sm.apply({ type: 'SetRole', peer: 'u', role: 'user' }, 2).ok, true)
  const r = sm.apply(putFile('/a', [extent(1)]), 3)
  assert.is(r.ok, false)
  assert.is(!r.ok && r.error.name, 'WrongShard')
  assert.is(sm.getFile('/a'), undefined, 'nothing changed')
  const c = sm.apply({ type: 'CreateExtent', extent: extent(2) }, 4)
  assert.is(!c.ok && c.error.name, 'WrongShard')
})

test('a data group takes the files and extents of its own shards only', () => {
  const g1 = data(1)
  const mine = `/${nameIn(1)}/x`
  const theirs = `/${nameIn(2)}/x`
  assert.is(g1.apply(putFile(mine, [extent(1)]), 1).ok, true)
  const wrong = g1.apply(putFile(theirs, [extent(2)]), 2)
  assert.is(!wrong.ok && wrong.error.name, 'WrongShard')
  assert.equal(!wrong.ok && wrong.error.details?.group, 2)
  assert.is(g1.getFile(theirs), undefined)
  const del = g1.apply({ type: 'DeleteFile', path: theirs }, 3)
  assert.is(!del.ok && del.error.name, 'WrongShard')
  const init = g1.apply({ type: 'InitCluster', clusterId: 'c', createdAtMs: 1, admin: 'a', member: member('n1') }, 4)
  assert.is(!init.ok && init.error.name, 'WrongShard')
  assert.is(g1.cluster(), undefined)
  // standalone extents go by the hash of their id; extents of files are found by id
  let n = 100
  while (groupOfShard(shardOfExtent(uuid(n)), GROUPS) !== 1) n++
  let m = 100
  while (groupOfShard(shardOfExtent(uuid(m)), GROUPS) === 1) m++
  assert.is(g1.apply({ type: 'CreateExtent', extent: extent(n) }, 5).ok, true)
  const other = g1.apply({ type: 'CreateExtent', extent: extent(m) }, 6)
  assert.is(!other.ok && other.error.name, 'WrongShard')
  assert.is(g1.apply({ type: 'UpdateReplication', id: uuid(1), replicas: ['n4'] }, 7).ok, true)
  assert.equal(g1.getExtent(uuid(1))?.replicas, ['n4'])
})

test('a snapshot records its scope and restores only into the same one', () => {
  const g2 = data(2)
  assert.is(g2.apply(putFile(`/${nameIn(2)}/f`, [extent(7)]), 1).ok, true)
  const bytes = g2.snapshot()
  const back = MetadataStateMachine.restore(bytes, { kind: 'data', group: 2, groups: GROUPS })
  assert.equal(back.scope, { kind: 'data', group: 2, groups: GROUPS })
  assert.equal(back.snapshot(), bytes)
  throwsNamed(() => MetadataStateMachine.restore(bytes, { kind: 'data', group: 1, groups: GROUPS }), 'InvalidArgument')
  throwsNamed(() => MetadataStateMachine.restore(bytes), 'InvalidArgument')
  throwsNamed(() => MetadataStateMachine.restore(bytes, { kind: 'system' }), 'InvalidArgument')
})

test('a data scope is validated', () => {
  assert.throws(() => new MetadataStateMachine({ kind: 'data', group: 0, groups: 3 }), (e: Error) => e.name === 'InvalidArgument')
  assert.throws(() => new MetadataStateMachine({ kind: 'data', group: 4, groups: 3 }), (e: Error) => e.name === 'InvalidArgument')
  assert.throws(() => new MetadataStateMachine({ kind: 'data', group: 1, groups: 17 }), (e: Error) => e.name === 'InvalidArgument')
})

test.run()
