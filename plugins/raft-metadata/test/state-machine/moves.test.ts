import { test } from 'uvu'
import * as assert from 'uvu/assert'
import type { MetadataOp, MetadataResult } from '@dfs/api'
import { MetadataStateMachine } from '../../src/state-machine/index.js'
import { decodeCbor, encodeCbor } from '../../src/codec.js'
import { extent, member, putFile, uuid } from './fixtures.js'
import { throwsNamed } from '../throws-named.js'

/** Two-phase moves (StartMove, MigrateExtent, CancelMove) and draining members (SetDraining). */

function apply (sm: MetadataStateMachine, op: unknown): MetadataResult {
  return sm.apply(op as MetadataOp, sm.appliedIndex() + 1)
}

function ok (sm: MetadataStateMachine, op: unknown): MetadataResult & { ok: true } {
  const r = apply(sm, op)
  if (!r.ok) assert.unreachable(`${JSON.stringify(op)} failed: ${r.error.name}: ${r.error.message}`)
  return r as MetadataResult & { ok: true }
}

function rejects (sm: MetadataStateMachine, op: unknown, name: string): void {
  const before = sm.snapshot()
  const r = apply(sm, op)
  if (r.ok) assert.unreachable(`${JSON.stringify(op)} should fail with ${name}`)
  else assert.is(r.error.name, name, r.error.message)
  const strip = (b: Uint8Array): Uint8Array => {
    const s = decodeCbor(b) as Record<string, unknown>
    delete s.appliedIndex
    return encodeCbor(s)
  }
  assert.equal(strip(sm.snapshot()), strip(before), 'a rejected op changes nothing')
}

test('StartMove records the intent; MigrateExtent switches the replica and clears it', () => {
  const sm = new MetadataStateMachine()
  ok(sm, { type: 'CreateExtent', extent: extent(1) })
  const started = ok(sm, { type: 'StartMove', id: uuid(1), from: 'n2', to: 'n7' })
  assert.equal(started.extent?.move, { from: 'n2', to: 'n7' })
  assert.equal(sm.getExtent(uuid(1))?.replicas, ['n1', 'n2', 'n3'], 'the replica set is unchanged until the switch')
  const done = ok(sm, { type: 'MigrateExtent', id: uuid(1), from: 'n2', to: 'n7' })
  assert.equal(done.extent, { ...extent(1), replicas: ['n1', 'n7', 'n3'] })
  assert.is(sm.getExtent(uuid(1))?.move, undefined)
})

test('MigrateExtent with recorded: only while that move is recorded, so a cancelled move stays cancelled', () => {
  const sm = new MetadataStateMachine()
  ok(sm, { type: 'CreateExtent', extent: extent(1) })
  rejects(sm, { type: 'MigrateExtent', id: uuid(1), from: 'n2', to: 'n7', recorded: true }, 'NotFound')
  ok(sm, { type: 'StartMove', id: uuid(1), from: 'n2', to: 'n7' })
  rejects(sm, { type: 'MigrateExtent', id: uuid(1), from: 'n3', to: 'n7', recorded: true }, 'NotFound')
  rejects(sm, { type: 'MigrateExtent', id: uuid(1), from: 'n2', to: 'n8', recorded: true }, 'NotFound')
  rejects(sm, { type: 'MigrateExtent', id: uuid(1), from: 'n2', to: 'n7', recorded: 'yes' }, 'InvalidArgument')
  ok(sm, { type: 'CancelMove', id: uuid(1) })
  rejects(sm, { type: 'MigrateExtent', id: uuid(1), from: 'n2', to: 'n7', recorded: true }, 'NotFound')
  ok(sm, { type: 'StartMove', id: uuid(1), from: 'n2', to: 'n7' })
  const done = ok(sm, { type: 'MigrateExtent', id: uuid(1), from: 'n2', to: 'n7', recorded: true })
  assert.equal(done.extent, { ...extent(1), replicas: ['n1', 'n7', 'n3'] })
  // without the field (entries written before it existed) the switch is unconditional, as it was
  ok(sm, { type: 'MigrateExtent', id: uuid(1), from: 'n3', to: 'n9' })
})

test('StartMove rejects a source without a copy, a target with one, a second move and bad fields', () => {
  const sm = new MetadataStateMachine()
  ok(sm, { type: 'CreateExtent', extent: extent(1) })
  rejects(sm, { type: 'StartMove', id: uuid(1), from: 'n9', to: 'n7' }, 'NotFound')
  rejects(sm, { type: 'StartMove', id: uuid(1), from: 'n1', to: 'n2' }, 'AlreadyExists')
  rejects(sm, { type: 'StartMove', id: uuid(1), from: 'n1', to: 'n1' }, 'InvalidArgument')
  rejects(sm, { type: 'StartMove', id: uuid(2), from: 'n1', to: 'n7' }, 'NotFound')
  rejects(sm, { type: 'StartMove', id: uuid(1), from: 'n1' }, 'InvalidArgument')
  rejects(sm, { type: 'StartMove', id: 'not-a-uuid', from: 'n1', to: 'n7' }, 'InvalidArgument')
  ok(sm, { type: 'StartMove', id: uuid(1), from: 'n1', to: 'n7' })
  rejects(sm, { type: 'StartMove', id: uuid(1), from: 'n2', to: 'n8' }, 'AlreadyExists')
})

test('CancelMove drops the intent only; without one it is NotFound', () => {
  const sm = new MetadataStateMachine()
  ok(sm, { type: 'CreateExtent', extent: extent(1) })
  rejects(sm, { type: 'CancelMove', id: uuid(1) }, 'NotFound')
  ok(sm, { type: 'StartMove', id: uuid(1), from: 'n1', to: 'n7' })
  const r = ok(sm, { type: 'CancelMove', id: uuid(1) })
  assert.equal(r.extent, extent(1))
  assert.equal(sm.getExtent(uuid(1)), extent(1))
  rejects(sm, { type: 'CancelMove', id: uuid(2) }, 'NotFound')
})

test('UpdateReplication keeps a move that still fits and drops one that does not', () => {
  const sm = new MetadataStateMachine()
  ok(sm, { type: 'CreateExtent', extent: extent(1) })
  ok(sm, { type: 'StartMove', id: uuid(1), from: 'n1', to: 'n7' })
  ok(sm, { type: 'UpdateReplication', id: uuid(1), replicas: ['n1', 'n2', 'n4'] })
  assert.equal(sm.getExtent(uuid(1))?.move, { from: 'n1', to: 'n7' })
  // repair dropped the source: nothing is left to move
  ok(sm, { type: 'UpdateReplication', id: uuid(1), replicas: ['n2', 'n4', 'n5'] })
  assert.is(sm.getExtent(uuid(1))?.move, undefined)
})

test('a new version of a file that keeps an extent keeps its move', () => {
  const sm = new MetadataStateMachine()
  ok(sm, putFile('/f', [extent(1)]))
  ok(sm, { type: 'StartMove', id: uuid(1), from: 'n3', to: 'n7' })
  ok(sm, putFile('/f', [extent(1), extent(2)]))
  assert.equal(sm.getExtent(uuid(1))?.move, { from: 'n3', to: 'n7' })
})

test('moves and draining survive a snapshot; a snapshot with a move that does not fit is refused', () => {
  const sm = new MetadataStateMachine()
  ok(sm, { type: 'PutMember', member: member('n1') })
  ok(sm, { type: 'CreateExtent', extent: extent(1) })
  ok(sm, { type: 'CreateExtent', extent: extent(2) })
  ok(sm, { type: 'StartMove', id: uuid(1), from: 'n2', to: 'n7' })
  ok(sm, { type: 'SetDraining', id: 'n1', draining: true })
  const back = MetadataStateMachine.restore(sm.snapshot())
  assert.equal(back.getExtent(uuid(1)), sm.getExtent(uuid(1)))
  assert.equal(back.getExtent(uuid(2)), extent(2))
  assert.is(back.members()[0].draining, true)
  assert.equal(back.snapshot(), sm.snapshot())

  const snap = decodeCbor(sm.snapshot()) as { extents: Array<Record<string, unknown>> }
  snap.extents[0].move = { from: 'n2', to: 'n3' }
  throwsNamed(() => MetadataStateMachine.restore(encodeCbor(snap)), 'InvalidArgument')
  snap.extents[0].move = 'n2'
  throwsNamed(() => MetadataStateMachine.restore(encodeCbor(snap)), 'InvalidArgument')
})

test('SetDraining marks and clears a member; re-announcing the member keeps it draining', () => {
  const sm = new MetadataStateMachine({ kind: 'system' })
  ok(sm, { type: 'PutMember', member: member('n1') })
  ok(sm, { type: 'SetDraining', id: 'n1', draining: true })
  assert.equal(sm.members()[0], { ...member('n1'), draining: true })
  ok(sm, { type: 'PutMember', member: { ...member('n1'), addrs: ['/ip4/127.0.0.1/tcp/9'] } })
  assert.is(sm.members()[0].draining, true)
  ok(sm, { type: 'SetDraining', id: 'n1', draining: false })
  assert.equal(sm.members()[0], { ...member('n1'), addrs: ['/ip4/127.0.0.1/tcp/9'] })
  rejects(sm, { type: 'SetDraining', id: 'n2', draining: true }, 'NotFound')
  rejects(sm, { type: 'SetDraining', id: 'n1', draining: 'yes' }, 'InvalidArgument')
  // a member record in a PutMember cannot smuggle the flag in
  ok(sm, { type: 'PutMember', member: { ...member('n3'), draining: true } })
  assert.is(sm.members().find((m) => m.id === 'n3')?.draining, undefined)
})

test('scopes: moves belong to data groups, SetDraining to the system group', () => {
  const system = new MetadataStateMachine({ kind: 'system' })
  rejects(system, { type: 'StartMove', id: uuid(1), from: 'n1', to: 'n7' }, 'WrongShard')
  const data = new MetadataStateMachine({ kind: 'data', group: 1, groups: 1 })
  rejects(data, { type: 'SetDraining', id: 'n1', draining: true }, 'WrongShard')
})

test.run()
