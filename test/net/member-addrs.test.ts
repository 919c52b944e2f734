import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey, peerIdFromString } from '@libp2p/peer-id'
import { createHost } from '../../src/net/host.js'
import { peerNetwork } from '../../src/net/peer-network.js'
import { MEMBER_ADDRS_MAX, parseMemberAddrs, validateMemberAddrs } from '../../src/net/member-addrs.js'

/** A joining node's addresses are checked at join; a member record's bad addresses never crash a node. */
const test = suite('net/member-addrs')

const refusal = (f: () => unknown): string => {
  try {
    f()
    return 'accepted'
  } catch (err) {
    return (err as Error).name
  }
}

test('validateMemberAddrs: 1..16 TCP multiaddrs of sane length, none naming another peer', async () => {
  const me = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
  const other = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
  assert.equal(validateMemberAddrs(['/ip4/127.0.0.1/tcp/7400', '/ip6/::1/tcp/7400', '/dns/n1.example/tcp/1']),
    ['/ip4/127.0.0.1/tcp/7400', '/ip6/::1/tcp/7400', '/dns/n1.example/tcp/1'])
  assert.equal(validateMemberAddrs([`/ip4/10.0.0.1/tcp/1/p2p/${me}`], { peer: me }), [`/ip4/10.0.0.1/tcp/1/p2p/${me}`])
  for (const [bad, why] of [
    [undefined, 'not an array'], ['/ip4/1.2.3.4/tcp/1', 'a string'], [[], 'empty'],
    [Array.from({ length: MEMBER_ADDRS_MAX + 1 }, (_, i) => `/ip4/10.0.0.${i}/tcp/1`), 'too many'],
    [['not a multiaddr'], 'garbage'], [['/ip4/999.1.1.1/tcp/1'], 'bad ip'], [['/ip4/1.2.3.4/udp/1'], 'no tcp'],
    [[`/ip4/1.2.3.4/tcp/1${'/tcp/1'.repeat(60)}`], 'too long'], [[42], 'a number'], [[`/ip4/1.2.3.4/tcp/1/p2p/${other}`], 'another peer']
  ] as Array<[unknown, string]>) {
    assert.is(refusal(() => validateMemberAddrs(bad, { peer: me })), 'InvalidArgument', why)
  }
})

test('parseMemberAddrs and addAddresses skip what does not parse, never throw', async () => {
  const peer = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
  const good = '/ip4/127.0.0.1/tcp/7401'
  const parsed = parseMemberAddrs(peer, ['garbage', good, 42, '/ip4/1.2.3.4/bogus/1', 'x'.repeat(100_000)])
  assert.equal(parsed.map(String), [good])
  assert.equal(parseMemberAddrs(peer, 'not an array' as unknown as string[]), [])
  const host = await createHost({ privateKey: await generateKeyPair('Ed25519') })
  try {
    const network = peerNetwork(host)
    await network.addAddresses(peer, ['garbage', good])
    assert.equal((await host.peerStore.get(peerIdFromString(peer))).addresses.map((a) => a.multiaddr.toString()), [good])
    await network.addAddresses(peer, ['only garbage'])
  } finally {
    await host.stop()
  }
})

test.run()
