import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import type { JoinTokenRecord, MetadataResult } from '@dfs/api'
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

function errorName (r: MetadataResult): string | undefined {
  return r.ok ? undefined : r.error.name
}

test('CreateJoinToken validates usesLeft (1..1000) and forPeer', () => {
  const sm = new MetadataStateMachine()
  let i = 0
  for (const bad of [{ usesLeft: 0 }, { usesLeft: 1001 }, { usesLeft: 1.5 }, { usesLeft: null }, { forPeer: '' }, { forPeer: 'a b' }]) {
    assert.is(errorName(sm.apply({ type: 'CreateJoinToken', token: { ...token(1, 1000, 5000), ...bad } } as any, ++i)), 'InvalidArgument', JSON.stringify(bad))
  }
  assert.equal(sm.joinTokens(), [])
  assert.ok(sm.apply({ type: 'CreateJoinToken', token: { ...token(1, 1000, 5000), usesLeft: 1000, forPeer: 'node9' } }, i + 1).ok)
  assert.equal(sm.joinToken(token(1, 0, 1).id), { ...token(1, 1000, 5000), usesLeft: 1000, forPeer: 'node9' })
})

test('UseJoinToken spends uses and drops the record at the last; unknown and used up are InvalidToken', () => {
  const sm = new MetadataStateMachine()
  const id = token(1, 0, 1).id
  sm.apply({ type: 'CreateJoinToken', token: { ...token(1, 1000, 5000), usesLeft: 2 } }, 1)
  assert.ok(sm.apply({ type: 'UseJoinToken', id, peer: 'a', nowMs: 1500 }, 2).ok)
  assert.is(sm.joinToken(id)?.usesLeft, 1)
  assert.ok(sm.apply({ type: 'UseJoinToken', id, peer: 'b', nowMs: 1600 }, 3).ok)
  assert.is(sm.joinToken(id), undefined)
  assert.is(errorName(sm.apply({ type: 'UseJoinToken', id, peer: 'c', nowMs: 1700 }, 4)), 'InvalidToken')
  assert.is(errorName(sm.apply({ type: 'UseJoinToken', id: token(9, 0, 1).id, peer: 'c', nowMs: 1700 }, 5)), 'InvalidToken')
})

test('UseJoinToken: forPeer binds the token; expiry is TokenExpired; refusals change nothing', () => {
  const sm = new MetadataStateMachine()
  const id = token(1, 0, 1).id
  sm.apply({ type: 'CreateJoinToken', token: { ...token(1, 1000, 5000), usesLeft: 3, forPeer: 'good' } }, 1)
  const before = sm.joinTokens()
  assert.is(errorName(sm.apply({ type: 'UseJoinToken', id, peer: 'evil', nowMs: 1500 }, 2)), 'InvalidToken')
  assert.is(errorName(sm.apply({ type: 'UseJoinToken', id, peer: 'good', nowMs: 6000 }, 3)), 'TokenExpired') // at expiresAtMs exactly
  assert.is(errorName(sm.apply({ type: 'UseJoinToken', id, peer: 'good', nowMs: 9000 }, 4)), 'TokenExpired')
  for (const bad of [{ id: 'XYZ', peer: 'good', nowMs: 1 }, { id, peer: '', nowMs: 1 }, { id, peer: 'good', nowMs: -1 }, { id, peer: 'good' }]) {
    assert.is(errorName(sm.apply({ type: 'UseJoinToken', ...bad } as any, sm.appliedIndex() + 1)), 'InvalidArgument', JSON.stringify(bad))
  }
  assert.equal(sm.joinTokens(), before)
  assert.ok(sm.apply({ type: 'UseJoinToken', id, peer: 'good', nowMs: 5999 }, sm.appliedIndex() + 1).ok)
  assert.is(sm.joinToken(id)?.usesLeft, 2)
})

test('a token without usesLeft (older versions) stays unlimited; joinTokens() lists live tokens sorted', () => {
  const sm = new MetadataStateMachine()
  sm.apply({ type: 'CreateJoinToken', token: token(2, 1000, 5000) }, 1)
  sm.apply({ type: 'CreateJoinToken', token: { ...token(1, 1000, 5000), usesLeft: 1 } }, 2)
  for (let i = 0; i < 20; i++) assert.ok(sm.apply({ type: 'UseJoinToken', id: token(2, 0, 1).id, peer: `p${i}`, nowMs: 2000 }, 3 + i).ok)
  assert.equal(sm.view.joinTokens().map((t) => t.id), [token(1, 0, 1).id, token(2, 0, 1).id])
  assert.is(sm.joinToken(token(2, 0, 1).id)?.usesLeft, undefined)
  const restored = MetadataStateMachine.restore(sm.snapshot())
  assert.equal(restored.joinTokens(), sm.joinTokens())
  // UseJoinToken is a system op
  const data = new MetadataStateMachine({ kind: 'data', group: 1, groups: 1 })
  assert.is(errorName(data.apply({ type: 'UseJoinToken', id: token(2, 0, 1).id, peer: 'x', nowMs: 1 }, 1)), 'WrongShard')
})

test.run()
