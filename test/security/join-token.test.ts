import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { MetadataStateMachine } from '@dfs/raft-metadata'
import { mintJoinToken, verifyJoinToken } from '../../src/security/join-token.js'

const test = suite('security/join tokens')

function cluster (): { sm: MetadataStateMachine, token: string, now: number } {
  const sm = new MetadataStateMachine()
  const now = 1_700_000_000_000
  const { token, record } = mintJoinToken('admin1', 60_000, now)
  assert.ok(sm.apply({ type: 'CreateJoinToken', token: record }, 1).ok)
  return { sm, token, now }
}

const fails = (fn: () => unknown, name: string): void => {
  try {
    fn()
    assert.unreachable(`expected ${name}`)
  } catch (err: any) {
    assert.is(err.name, name)
  }
}

test('a minted token verifies until it expires; metadata holds only a hash of its secret', () => {
  const { sm, token, now } = cluster()
  const record = verifyJoinToken(sm.view, token, now + 59_999)
  assert.is(record.createdBy, 'admin1')
  assert.not.ok(JSON.stringify(record).includes(token.split('.')[2]), 'the secret is not stored')
  fails(() => verifyJoinToken(sm.view, token, now + 60_000), 'TokenExpired')
})

test('a wrong secret, an unknown id, or garbage is InvalidToken', () => {
  const { sm, token, now } = cluster()
  const [prefix, id, secret] = token.split('.')
  const flipped = (secret[0] === 'A' ? 'B' : 'A') + secret.slice(1)
  fails(() => verifyJoinToken(sm.view, `${prefix}.${id}.${flipped}`, now), 'InvalidToken')
  fails(() => verifyJoinToken(sm.view, `${prefix}.${'0'.repeat(16)}.${secret}`, now), 'InvalidToken')
  for (const junk of ['', 'dfs-join', `${token}x`, 42, null, token.toUpperCase()]) {
    fails(() => verifyJoinToken(sm.view, junk, now), 'InvalidToken')
  }
})

test.run()
