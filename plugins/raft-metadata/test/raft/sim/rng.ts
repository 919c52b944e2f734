/**
 * A small seeded pseudo-random generator for the simulator. Every random choice of a simulated run
 * (election timeouts, message delays and losses, the fault schedule, client operations) comes from one
 * root Rng, so a seed replays the same run bit for bit.
 *
 * The generator is sfc32 (Chris Doty-Humphrey's Small Fast Counting generator), seeded through
 * splitmix32 so that neighbouring seeds give unrelated streams. It is not cryptographic.
 */
export class Rng {
  private a: number
  private b: number
  private c: number
  private d: number

  constructor (seed: number) {
    let s = seed >>> 0
    const mix = (): number => {
      // splitmix32
      s = (s + 0x9e3779b9) >>> 0
      let z = s
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0
      return (z ^ (z >>> 16)) >>> 0
    }
    this.a = mix()
    this.b = mix()
    this.c = mix()
    this.d = mix()
    // Discard the first outputs: sfc32 mixes its state over a few rounds.
    for (let i = 0; i < 12; i++) this.uint32()
  }

  /** A uniform 32-bit unsigned integer. */
  uint32 (): number {
    const t = (((this.a + this.b) >>> 0) + this.d) >>> 0
    this.d = (this.d + 1) >>> 0
    this.a = this.b ^ (this.b >>> 9)
    this.b = (this.c + (this.c << 3)) >>> 0
    this.c = ((this.c << 21) | (this.c >>> 11)) >>> 0
    this.c = (this.c + t) >>> 0
    return t
  }

  /** A uniform float in [0, 1). */
  next (): number {
    return this.uint32() / 4294967296
  }

  /** A uniform integer in [0, n). */
  int (n: number): number {
    if (!(n > 0)) throw new RangeError(`Rng.int: n must be > 0, got ${n}`)
    return Math.floor(this.next() * n)
  }

  /** A uniform integer in [lo, hi] (both inclusive). */
  range (lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1)
  }

  /** True with probability p. */
  chance (p: number): boolean {
    return this.next() < p
  }

  pick<T> (items: readonly T[]): T {
    if (items.length === 0) throw new RangeError('Rng.pick: empty list')
    return items[this.int(items.length)]
  }

  /** A shuffled copy (Fisher–Yates). */
  shuffle<T> (items: readonly T[]): T[] {
    const out = items.slice()
    for (let i = out.length - 1; i > 0; i--) {
      const j = this.int(i + 1)
      const t = out[i]
      out[i] = out[j]
      out[j] = t
    }
    return out
  }

  /** An independent generator derived from this one (consumes one output of this stream). */
  fork (): Rng {
    return new Rng(this.uint32())
  }

  /** A `() => number` in [0, 1), the shape RaftConfig.rand expects. */
  asRand (): () => number {
    return () => this.next()
  }
}
