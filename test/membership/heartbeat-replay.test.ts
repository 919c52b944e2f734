import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { TopicValidatorResult, type GossipSub, type Message } from '@libp2p/gossipsub'
import type { PeerId } from '@libp2p/interface'
import { encodeHeartbeat, type Heartbeat } from '../../src/membership/heartbeat-message.js'
import { HeartbeatService, type HeartbeatRefused } from '../../src/membership/heartbeat.js'
import { heartbeatTopic } from '../../src/membership/constants.js'

/**
 * The topic validator against replays, driven directly (gossipsub's signature check is libp2p's and
 * is tested there): messages are what gossipsub hands the validator once the signature of `from`
 * verified, and the failure detector runs on a hand-driven clock.
 */
const test = suite('membership/heartbeat replay: (incarnation, seq) must grow, in every health state')

const CLUSTER = 'replay-cluster'

async function peer (): Promise<PeerId> {
  return peerIdFromPrivateKey(await generateKeyPair('Ed25519'))
}

interface Rig {
  hb: HeartbeatService
  now: { ms: number }
  deliver: (from: PeerId, heartbeat: Heartbeat) => TopicValidatorResult
  refused: HeartbeatRefused[]
}

async function rig (members: Set<string>): Promise<Rig> {
  const validators = new Map<string, (source: PeerId, msg: Message) => TopicValidatorResult>()
  const pubsub = {
    topicValidators: validators,
    subscribe: () => {},
    unsubscribe: () => {},
    publish: async () => ({ recipients: [] })
  } as unknown as GossipSub
  const now = { ms: 0 }
  const self = await peer()
  const hb = new HeartbeatService({ peerId: self, pubsub, addresses: () => [] }, {
    clusterId: CLUSTER,
    isMember: (p) => members.has(p),
    heartbeatMs: 100,
    failureTimeoutMs: 600,
    checkIntervalMs: 50,
    clock: () => now.ms
  })
  const refused: HeartbeatRefused[] = []
  hb.addEventListener('refused', (e) => { refused.push(e.detail) })
  hb.start()
  const validate = validators.get(heartbeatTopic(CLUSTER))
  if (validate == null) throw new Error('the service did not install its validator')
  return {
    hb,
    now,
    refused,
    deliver: (from, heartbeat) => validate(from, { type: 'signed', from, topic: heartbeatTopic(CLUSTER), data: encodeHeartbeat(heartbeat), sequenceNumber: 1n, signature: new Uint8Array(64), key: undefined } as unknown as Message)
  }
}

function heartbeatOf (id: string, incarnation: number, seq: number): Heartbeat {
  return { id, incarnation, seq, name: 'm', region: '', addrs: [], load: { extents: 0, bytes: 0 }, capacity: { bytes: 0 }, sentAtMs: 0 }
}

test('a replayed old heartbeat does not make a Failed member Healthy; a newer one (or a new incarnation) does', async () => {
  const m = await peer()
  const r = await rig(new Set([m.toString()]))
  try {
    // the member runs for a while: every heartbeat is broadcast, so any member can keep them all
    const sent: Heartbeat[] = []
    for (let seq = 1; seq <= 5; seq++) {
      sent.push(heartbeatOf(m.toString(), 1_000, seq))
      assert.is(r.deliver(m, sent[sent.length - 1]), TopicValidatorResult.Accept)
      r.now.ms += 100
      r.hb.check()
    }
    assert.is(r.hb.health(m.toString()), 'Healthy')
    // it dies
    r.now.ms += 1_000
    r.hb.check()
    assert.is(r.hb.health(m.toString()), 'Failed')
    // replays of everything it ever sent: all ignored as stale, it stays Failed
    for (const old of sent) assert.is(r.deliver(m, old), TopicValidatorResult.Ignore, `seq ${old.seq}`)
    assert.is(r.refused.filter((x) => x.reason === 'stale').length, sent.length)
    assert.ok(r.refused.every((x) => x.verdict === 'ignore'))
    r.hb.check()
    assert.is(r.hb.health(m.toString()), 'Failed', 'a replay does not revive it')
    // an older incarnation (an older run, or a clock set back) is refused too
    assert.is(r.deliver(m, heartbeatOf(m.toString(), 999, 1_000_000)), TopicValidatorResult.Ignore)
    assert.is(r.hb.health(m.toString()), 'Failed')
    // it really comes back: a new incarnation, seq from 1
    assert.is(r.deliver(m, heartbeatOf(m.toString(), 2_000, 1)), TopicValidatorResult.Accept)
    r.hb.check()
    assert.is(r.hb.health(m.toString()), 'Healthy')
    // and its own earlier heartbeats of this incarnation cannot be replayed either
    assert.is(r.deliver(m, heartbeatOf(m.toString(), 2_000, 1)), TopicValidatorResult.Ignore)
    assert.is(r.deliver(m, heartbeatOf(m.toString(), 2_000, 2)), TopicValidatorResult.Accept)
  } finally {
    r.hb.stop()
  }
})

test('a Healthy member\'s duplicate or older heartbeat does not refresh its liveness', async () => {
  const m = await peer()
  const r = await rig(new Set([m.toString()]))
  try {
    assert.is(r.deliver(m, heartbeatOf(m.toString(), 5_000, 10)), TopicValidatorResult.Accept)
    // 400 ms later the member is Suspected; only replays arrive meanwhile
    for (let i = 0; i < 8; i++) {
      r.now.ms += 100
      assert.is(r.deliver(m, heartbeatOf(m.toString(), 5_000, 10 - (i % 3))), TopicValidatorResult.Ignore)
      r.hb.check()
    }
    assert.is(r.hb.health(m.toString()), 'Failed', 'replays kept nothing alive')
  } finally {
    r.hb.stop()
  }
})

test.run()
