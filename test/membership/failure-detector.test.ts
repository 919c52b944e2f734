import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { FailureDetector, failureDetectorTiming, type Transition } from '../../src/membership/failure-detector.js'

const test = suite('membership/failure-detector (fake clock)')

/** A detector and every transition it reported through its callback. */
function make (init: ConstructorParameters<typeof FailureDetector>[0] = {}): { fd: FailureDetector, seen: Transition[] } {
  const seen: Transition[] = []
  const fd = new FailureDetector({ ...init, onTransition: (t) => { seen.push(t) } })
  return { fd, seen }
}

const edges = (ts: Transition[]): string[] => ts.map((t) => `${t.member}:${t.from}>${t.to}`)

test('defaults: heartbeat 5000 ms, suspect after 2 heartbeats, failed after 15000 ms', () => {
  const fd = new FailureDetector()
  assert.is(fd.heartbeatMs, 5000)
  assert.is(fd.suspectTimeoutMs, 10000)
  assert.is(fd.failureTimeoutMs, 15000)
  assert.equal(fd.counts(), { total: 0, healthy: 0, suspected: 0, failed: 0 })
})

test('configuration is validated: failure timeout > heartbeat, heartbeat < suspect ≤ failure, integers in range', () => {
  const bad: Array<Parameters<typeof failureDetectorTiming>[0]> = [
    { heartbeatMs: 1000, failureTimeoutMs: 1000 },
    { heartbeatMs: 1000, failureTimeoutMs: 500 },
    { heartbeatMs: 0 },
    { heartbeatMs: -5 },
    { heartbeatMs: 5 }, // below the minimum
    { heartbeatMs: 100.5 },
    { heartbeatMs: Number.NaN },
    { failureTimeoutMs: Number.POSITIVE_INFINITY },
    { heartbeatMs: '100' as unknown as number },
    { heartbeatMs: 1000, suspectTimeoutMs: 1000 },
    { heartbeatMs: 1000, suspectTimeoutMs: 999 },
    { heartbeatMs: 1000, suspectTimeoutMs: 16000 },
    { failureTimeoutMs: 10 * 24 * 3600 * 1000 }
  ]
  for (const init of bad) {
    assert.throws(() => new FailureDetector(init), (e: any) => e.name === 'InvalidArgument' && typeof e.details.option === 'string', JSON.stringify(init))
  }
  // the default suspect timeout never exceeds the failure timeout
  assert.equal(failureDetectorTiming({ heartbeatMs: 5000, failureTimeoutMs: 8000 }), { heartbeatMs: 5000, suspectTimeoutMs: 8000, failureTimeoutMs: 8000 })
  assert.equal(failureDetectorTiming({ heartbeatMs: 100, failureTimeoutMs: 600 }), { heartbeatMs: 100, suspectTimeoutMs: 200, failureTimeoutMs: 600 })
  assert.equal(failureDetectorTiming({ heartbeatMs: 100, suspectTimeoutMs: 450, failureTimeoutMs: 600 }), { heartbeatMs: 100, suspectTimeoutMs: 450, failureTimeoutMs: 600 })
})

test('Healthy → Suspected exactly at the suspect timeout → Failed exactly at the failure timeout', () => {
  const { fd, seen } = make()
  assert.equal(fd.heartbeat('a', 1000), [], 'first heartbeat adds the member, Healthy, no transition')
  assert.is(fd.health('a'), 'Healthy')
  assert.equal(fd.tick(1000 + 9999), [])
  assert.is(fd.health('a'), 'Healthy')
  const t1 = fd.tick(1000 + 10000)
  assert.equal(t1, [{ member: 'a', from: 'Healthy', to: 'Suspected', lastSeenMs: 1000, atMs: 11000 }])
  assert.equal(fd.tick(1000 + 14999), [])
  assert.is(fd.health('a'), 'Suspected')
  const t2 = fd.tick(1000 + 15000)
  assert.equal(t2, [{ member: 'a', from: 'Suspected', to: 'Failed', lastSeenMs: 1000, atMs: 16000 }])
  assert.equal(fd.tick(1_000_000), [], 'Failed is terminal for tick')
  assert.is(fd.health('a'), 'Failed')
  assert.equal(seen, [...t1, ...t2], 'the callback saw the same transitions, in order')
  assert.equal(fd.status('a'), { member: 'a', health: 'Failed', lastSeenMs: 1000, sinceMs: 16000 })
})

test('a heartbeat brings a Suspected or a Failed member back to Healthy, and restarts its timers', () => {
  const { fd, seen } = make({ heartbeatMs: 100, failureTimeoutMs: 600 })
  fd.heartbeat('a', 0)
  fd.tick(200)
  assert.is(fd.health('a'), 'Suspected')
  assert.equal(fd.heartbeat('a', 250), [{ member: 'a', from: 'Suspected', to: 'Healthy', lastSeenMs: 250, atMs: 250 }])
  assert.equal(fd.tick(449), [], 'timers count from the new heartbeat')
  fd.tick(450)
  fd.tick(850)
  assert.is(fd.health('a'), 'Failed')
  assert.equal(fd.heartbeat('a', 5000), [{ member: 'a', from: 'Failed', to: 'Healthy', lastSeenMs: 5000, atMs: 5000 }])
  assert.equal(edges(seen), ['a:Healthy>Suspected', 'a:Suspected>Healthy', 'a:Healthy>Suspected', 'a:Suspected>Failed', 'a:Failed>Healthy'])
})

test('heartbeats while Healthy keep the member Healthy indefinitely and emit nothing', () => {
  const { fd, seen } = make({ heartbeatMs: 100, failureTimeoutMs: 600 })
  for (let now = 0; now <= 10_000; now += 150) {
    assert.equal(fd.heartbeat('a', now), [])
    assert.equal(fd.tick(now + 149), [])
  }
  assert.equal(seen, [])
})

test('a silence past the failure timeout between two ticks goes through Suspected first', () => {
  const { fd, seen } = make({ heartbeatMs: 100, failureTimeoutMs: 600 })
  fd.heartbeat('a', 0)
  const out = fd.tick(60_000)
  assert.equal(edges(out), ['a:Healthy>Suspected', 'a:Suspected>Failed'])
  assert.ok(out.every((t) => t.atMs === 60_000 && t.lastSeenMs === 0))
  assert.equal(edges(seen), edges(out))
})

test('add(): a member never heard from has a grace period, then turns Suspected and Failed', () => {
  const { fd } = make({ heartbeatMs: 100, failureTimeoutMs: 600 })
  assert.ok(fd.add('a', 1000))
  assert.not.ok(fd.add('a', 5000), 'adding twice changes nothing')
  assert.equal(fd.status('a'), { member: 'a', health: 'Healthy', lastSeenMs: undefined, sinceMs: 1000 })
  assert.equal(fd.tick(1199), [])
  assert.equal(fd.tick(1200), [{ member: 'a', from: 'Healthy', to: 'Suspected', lastSeenMs: undefined, atMs: 1200 }])
  assert.equal(edges(fd.tick(1600)), ['a:Suspected>Failed'])
  assert.equal(edges(fd.heartbeat('a', 1700)), ['a:Failed>Healthy'])
})

test('counts and members() over several members; remove() forgets a member without a transition', () => {
  const { fd, seen } = make({ heartbeatMs: 100, failureTimeoutMs: 600 })
  fd.heartbeat('a', 0)
  fd.heartbeat('b', 0)
  fd.heartbeat('c', 0)
  fd.heartbeat('d', 0)
  fd.heartbeat('a', 500)
  fd.heartbeat('b', 300)
  fd.heartbeat('c', 300)
  fd.tick(650) // a: 150 silent, b/c: 350 silent, d: 650 silent
  assert.equal(fd.counts(), { total: 4, healthy: 1, suspected: 2, failed: 1 })
  assert.equal(fd.members().map((m) => `${m.member}:${m.health}`), ['a:Healthy', 'b:Suspected', 'c:Suspected', 'd:Failed'])
  const before = seen.length
  assert.ok(fd.remove('d'))
  assert.not.ok(fd.remove('d'))
  assert.not.ok(fd.has('d'))
  assert.is(fd.health('d'), undefined)
  assert.is(fd.status('d'), undefined)
  assert.is(seen.length, before)
  assert.equal(fd.counts(), { total: 3, healthy: 1, suspected: 2, failed: 0 })
  assert.equal(fd.tick(10_000).length, 4, 'a: H>S>F, b: S>F, c: S>F')
  assert.equal(fd.counts(), { total: 3, healthy: 0, suspected: 0, failed: 3 })
})

test('repeated ticks at the same time emit nothing new; a clock going backwards is no time passing', () => {
  const { fd, seen } = make({ heartbeatMs: 100, failureTimeoutMs: 600 })
  fd.heartbeat('a', 1000)
  fd.tick(1300)
  fd.tick(1300)
  assert.equal(edges(seen), ['a:Healthy>Suspected'])
  assert.equal(fd.tick(500), [], 'earlier reading: nothing happens')
  fd.heartbeat('a', 2000)
  fd.heartbeat('a', 1500) // late reading: lastSeen never moves back
  assert.is(fd.status('a')?.lastSeenMs, 2000)
  assert.equal(fd.tick(2199), [])
  assert.throws(() => fd.tick(Number.NaN), TypeError)
  assert.throws(() => fd.heartbeat('a', Number.POSITIVE_INFINITY), TypeError)
})

test('a custom suspect timeout is honoured; suspect = failure timeout turns a member Suspected and Failed together', () => {
  const custom = make({ heartbeatMs: 100, suspectTimeoutMs: 450, failureTimeoutMs: 600 })
  custom.fd.heartbeat('a', 0)
  assert.equal(custom.fd.tick(449), [])
  assert.equal(edges(custom.fd.tick(450)), ['a:Healthy>Suspected'])
  const same = make({ heartbeatMs: 100, suspectTimeoutMs: 600, failureTimeoutMs: 600 })
  same.fd.heartbeat('a', 0)
  assert.equal(same.fd.tick(599), [])
  assert.equal(edges(same.fd.tick(600)), ['a:Healthy>Suspected', 'a:Suspected>Failed'])
})

test.run()
