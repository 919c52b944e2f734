import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { AUDIT_BATCH_MAX, AUDIT_FIELD_LENGTH_MAX, AUDIT_GENESIS_HASH, AUDIT_RETENTION_MIN, auditEntryHash, firstBrokenAuditEntry } from '@dfs/api'
import type { AuditRecord, MetadataResult } from '@dfs/api'
import { decodeCbor, encodeCbor } from '../../src/codec.js'
import { MetadataStateMachine } from '../../src/state-machine/index.js'

const test = suite('state machine: audit log')

function record (n: number, over: Partial<AuditRecord> = {}): AuditRecord {
  return {
    timeMs: 1000 + n, user: 'user1', role: 'user', tenant: null, operation: 'fs.put', resource: `/f${n}`,
    success: true, error: null, count: 1, node: 'n1', ...over
  }
}

function machine (scope?: ConstructorParameters<typeof MetadataStateMachine>[0]): { sm: MetadataStateMachine, apply: (op: any) => MetadataResult } {
  const sm = new MetadataStateMachine(scope)
  let index = 0
  return { sm, apply: (op) => sm.apply(op, ++index) }
}

function stateOf (bytes: Uint8Array): unknown {
  const { appliedIndex: _, ...rest } = decodeCbor(bytes) as Record<string, unknown>
  return rest
}

test('AppendAudit chains entries: seq from 1, hash over the previous hash; the chain verifies', () => {
  const { sm, apply } = machine({ kind: 'system' })
  assert.equal(sm.audit(), { checkpoint: { seq: 0, hash: AUDIT_GENESIS_HASH }, entries: [] })
  assert.ok(apply({ type: 'AppendAudit', records: [record(1), record(2, { success: false, error: 'PermissionDenied', role: null, count: 7 })] }).ok)
  assert.ok(apply({ type: 'AppendAudit', records: [record(3, { role: 'node', tenant: 'acme', resource: '' })] }).ok)
  const { checkpoint, entries } = sm.view.audit()
  assert.equal(entries.map((e) => e.seq), [1, 2, 3])
  const { hash: h1, ...e1 } = entries[0]
  assert.is(h1, auditEntryHash(AUDIT_GENESIS_HASH, e1))
  const { hash: h3, ...e3 } = entries[2]
  assert.is(h3, auditEntryHash(entries[1].hash, e3))
  assert.equal(entries[1], { ...record(2, { success: false, error: 'PermissionDenied', role: null, count: 7 }), seq: 2, hash: entries[1].hash })
  assert.is(firstBrokenAuditEntry(checkpoint, entries), undefined)
})

test('AppendAudit belongs to the system group', () => {
  const { apply } = machine({ kind: 'data', group: 1, groups: 2 })
  assert.is((apply({ type: 'AppendAudit', records: [record(1)] }) as any).error.name, 'WrongShard')
})

test('malformed records are InvalidArgument and append nothing (not even the good ones of the batch)', () => {
  const { sm, apply } = machine()
  apply({ type: 'AppendAudit', records: [record(0)] })
  const before = sm.snapshot()
  const long = 'x'.repeat(AUDIT_FIELD_LENGTH_MAX + 1)
  const bad: unknown[][] = [
    [],
    Array.from({ length: AUDIT_BATCH_MAX + 1 }, (_, i) => record(i)),
    [record(1), { ...record(2), operation: long }],
    [{ ...record(1), resource: long }],
    [{ ...record(1), operation: '' }],
    [{ ...record(1), count: 0 }],
    [{ ...record(1), count: 1.5 }],
    [{ ...record(1), role: 'root' }],
    [{ ...record(1), tenant: 'Not A Tenant' }],
    [{ ...record(1), success: false, error: null }],
    [{ ...record(1), success: true, error: 'PermissionDenied' }],
    [{ ...record(1), success: false, error: 'no spaces allowed' }],
    [{ ...record(1), success: 'yes' }],
    [{ ...record(1), user: '' }],
    [{ ...record(1), node: 'has space' }],
    [{ ...record(1), timeMs: -1 }],
    [{ ...record(1), user: undefined }],
    [null]
  ]
  for (const records of bad) {
    const r = apply({ type: 'AppendAudit', records })
    assert.is((r as any).error?.name, 'InvalidArgument', JSON.stringify(records).slice(0, 200))
  }
  assert.is((apply({ type: 'AppendAudit' }) as any).error?.name, 'InvalidArgument')
  assert.equal(stateOf(sm.snapshot()), stateOf(before))
  // the limits themselves are accepted
  const edge = 'y'.repeat(AUDIT_FIELD_LENGTH_MAX)
  assert.ok(apply({ type: 'AppendAudit', records: Array.from({ length: AUDIT_BATCH_MAX }, (_, i) => record(i, { operation: edge, resource: edge })) }).ok)
  assert.is(sm.audit().entries.length, AUDIT_BATCH_MAX + 1)
})

test('retention drops the oldest entries; the checkpoint is the last dropped one; lowering it trims', () => {
  const { sm, apply } = machine()
  assert.ok(apply({ type: 'SetConfig', key: 'auditRetention', value: 150 }).ok)
  for (let i = 0; i < 4; i++) {
    assert.ok(apply({ type: 'AppendAudit', records: Array.from({ length: 50 }, (_, j) => record(i * 50 + j)) }).ok)
  }
  let audit = sm.audit()
  assert.is(audit.entries.length, 150)
  assert.is(audit.entries[0].seq, 51)
  assert.is(audit.entries[149].seq, 200)
  assert.is(audit.checkpoint.seq, 50)
  assert.is(firstBrokenAuditEntry(audit.checkpoint, audit.entries), undefined)
  const entry50Hash = audit.checkpoint.hash
  assert.ok(apply({ type: 'SetConfig', key: 'auditRetention', value: AUDIT_RETENTION_MIN }).ok)
  audit = sm.audit()
  assert.is(audit.entries.length, AUDIT_RETENTION_MIN)
  assert.is(audit.checkpoint.seq, 100)
  assert.is.not(audit.checkpoint.hash, entry50Hash)
  assert.is(firstBrokenAuditEntry(audit.checkpoint, audit.entries), undefined)
  // the chain goes on from the retained tail
  assert.ok(apply({ type: 'AppendAudit', records: [record(999)] }).ok)
  audit = sm.audit()
  assert.is(audit.entries[audit.entries.length - 1].seq, 201)
  assert.is(firstBrokenAuditEntry(audit.checkpoint, audit.entries), undefined)
  // survives snapshot and restore, byte for byte
  const restored = MetadataStateMachine.restore(sm.snapshot())
  assert.equal(restored.audit(), sm.audit())
  assert.ok(Buffer.from(restored.snapshot()).equals(Buffer.from(sm.snapshot())))
})

test('a long log trims in place (amortised) and stays exact', () => {
  const { sm, apply } = machine()
  apply({ type: 'SetConfig', key: 'auditRetention', value: 100 })
  for (let i = 0; i < 60; i++) apply({ type: 'AppendAudit', records: Array.from({ length: 100 }, (_, j) => record(i * 100 + j)) })
  const audit = sm.audit()
  assert.is(audit.entries.length, 100)
  assert.is(audit.checkpoint.seq, 5900)
  assert.is(audit.entries[0].seq, 5901)
  assert.is(firstBrokenAuditEntry(audit.checkpoint, audit.entries), undefined)
})

test('auditRetention and userRequestRate settings are validated', () => {
  const { sm, apply } = machine()
  for (const [key, value] of [
    ['auditRetention', AUDIT_RETENTION_MIN - 1], ['auditRetention', 1_000_001], ['auditRetention', 150.5], ['auditRetention', '200'],
    ['userRequestRate', -1], ['userRequestRate', 1_000_001], ['userRequestRate', 0.5]
  ] as const) {
    assert.is((apply({ type: 'SetConfig', key, value }) as any).error?.name, 'InvalidArgument', `${key}=${value}`)
  }
  assert.is(sm.config().auditRetention, 10_000)
  assert.is(sm.config().userRequestRate, 0)
  assert.ok(apply({ type: 'SetConfig', key: 'userRequestRate', value: 1_000_000 }).ok)
  assert.ok(apply({ type: 'SetConfig', key: 'auditRetention', value: 1_000_000 }).ok)
  assert.is(sm.config().userRequestRate, 1_000_000)
  assert.is(sm.config().auditRetention, 1_000_000)
  const restored = MetadataStateMachine.restore(sm.snapshot())
  assert.equal(restored.config(), sm.config())
})

test('a snapshot keeps stored hashes: a tampered entry restores and is found by firstBrokenAuditEntry', () => {
  const { sm, apply } = machine()
  apply({ type: 'AppendAudit', records: [record(1), record(2), record(3), record(4)] })
  const snap = decodeCbor(sm.snapshot()) as any
  snap.audit.entries[2].resource = '/innocent' // an edit on disk: the hash is left as it was
  const tampered = MetadataStateMachine.restore(encodeCbor(snap))
  const audit = tampered.audit()
  assert.is(audit.entries[2].resource, '/innocent')
  assert.is(audit.entries[2].hash, sm.audit().entries[2].hash)
  assert.is(firstBrokenAuditEntry(audit.checkpoint, audit.entries), 3)
  // appending does not repair it: the break stays where it is
  tampered.apply({ type: 'AppendAudit', records: [record(5)] }, tampered.appliedIndex() + 1)
  assert.is(firstBrokenAuditEntry(tampered.audit().checkpoint, tampered.audit().entries), 3)
  // a removed entry breaks the chain too
  const removed = decodeCbor(sm.snapshot()) as any
  removed.audit.entries.splice(1, 1)
  const r = MetadataStateMachine.restore(encodeCbor(removed)).audit()
  assert.is(firstBrokenAuditEntry(r.checkpoint, r.entries), 3)
  // a malformed stored entry is refused outright
  const broken = decodeCbor(sm.snapshot()) as any
  broken.audit.entries[0].hash = 'zz'
  try {
    MetadataStateMachine.restore(encodeCbor(broken))
    assert.unreachable('restore accepted a malformed hash')
  } catch (err) {
    assert.is((err as Error).name, 'InvalidArgument')
  }
})

test.run()
