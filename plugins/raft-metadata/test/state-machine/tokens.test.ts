import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import type { JoinTokenRecord } from '@dfs/api'
import { decodeCbor, encodeCbor } from '../../src/codec.js'
import { MetadataStateMachine } from '../../src/state-machine/index.js'

const test = suite('state machine: join tokens')

function token (n: number, createdAtMs: number, ttlMs: number): JoinTokenRecord {
  return { id: n.toString(16).padStart(16, '0'), secretHash: 'sha256:' + 'ab'.repeat(32), createdAtMs, expiresAtMs: createdAtMs + ttlMs, createdBy: 'admin1' }
}

test('CreateJoinToken records a token; a second one with the same id is AlreadyExists', () => {
  const sm = new MetadataStateMachine()
  assert.ok(sm.apply({ type: 'CreateJoinToken', token: token(1, 1000, 5000) }, 1).ok)
  assert.equal(sm.joinToken(token(1, 1000, 5000).id), token(1, 1000, 5000))
  const again = sm.apply({ type: 'CreateJoinToken', token: token(1, 2000, 5000) }, 2)
  assert.is(again.ok, false)
  assert.is((again as any).error.name, 'AlreadyExists')
})

test('malformed tokens are refused and change nothing', () => {
  const sm = new MetadataStateMachine()
  const bad: unknown[] = [
    { ...token(1, 1000, 5000), id: 'XYZ' },
    { ...token(1, 1000, 5000), secretHash: 'md5:00' },
    { ...token(1, 1000, 5000), expiresAtMs: 1000 },
    { ...token(1, 1000, 5000), createdBy: '' },
    null
  ]
  const before = sm.snapshot()
  bad.forEach((t, i) => {
    const r = sm.apply({ type: 'CreateJoinToken', token: t } as any, i + 1)
    assert.is(r.ok, false, JSON.stringify(t))
    assert.is((r as any).error.name, 'InvalidArgument')
  })
  assert.equal(decodeCbor(sm.snapshot()), { ...(decodeCbor(before) as object), appliedIndex: bad.length })
})

test('creating a token drops the tokens that expired before it was created; revoke removes one', () => {
  const sm = new MetadataStateMachine()
  sm.apply({ type: 'CreateJoinToken', token: token(1, 1000, 1000) }, 1) // expires at 2000
  sm.apply({ type: 'CreateJoinToken', token: token(2, 1000, 9000) }, 2) // expires at 10000
  sm.apply({ type: 'CreateJoinToken', token: token(3, 2000, 1000) }, 3)
  assert.is(sm.joinToken(token(1, 0, 1).id), undefined)
  assert.ok(sm.joinToken(token(2, 0, 1).id) != null)
  assert.ok(sm.apply({ type: 'RevokeJoinToken', id: token(2, 0, 1).id }, 4).ok)
  assert.is(sm.joinToken(token(2, 0, 1).id), undefined)
  const missing = sm.apply({ type: 'RevokeJoinToken', id: token(2, 0, 1).id }, 5)
  assert.is((missing as any).error.name, 'NotFound')
})

test('tokens survive snapshot and restore; a version 1 snapshot restores with none', () => {
  const sm = new MetadataStateMachine()
  sm.apply({ type: 'CreateJoinToken', token: token(7, 1000, 5000) }, 1)
  const restored = MetadataStateMachine.restore(sm.snapshot())
  assert.equal(restored.joinToken(token(7, 0, 1).id), token(7, 1000, 5000))
  assert.ok(Buffer.from(restored.snapshot()).equals(Buffer.from(sm.snapshot())))
  const v1 = decodeCbor(new MetadataStateMachine().snapshot()) as Record<string, unknown>
  delete v1.tokens
  v1.v = 1
  assert.is(MetadataStateMachine.restore(encodeCbor(v1)).joinToken(token(7, 0, 1).id), undefined)
})

test.run()
