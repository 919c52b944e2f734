/**
 * A binary min-heap of timed events, ordered by (time, seq). `seq` is a strictly increasing insertion
 * counter, so events at the same virtual time pop in insertion order and the run stays deterministic.
 */
export interface Timed {
  time: number
  seq: number
}

export class EventHeap<T extends Timed> {
  private readonly items: T[] = []

  get size (): number {
    return this.items.length
  }

  push (item: T): void {
    const a = this.items
    a.push(item)
    let i = a.length - 1
    while (i > 0) {
      const p = (i - 1) >> 1
      if (!less(a[i], a[p])) break
      swap(a, i, p)
      i = p
    }
  }

  peek (): T | undefined {
    return this.items[0]
  }

  pop (): T | undefined {
    const a = this.items
    if (a.length === 0) return undefined
    const top = a[0]
    const last = a.pop() as T
    if (a.length > 0) {
      a[0] = last
      let i = 0
      for (;;) {
        const l = 2 * i + 1
        const r = l + 1
        let m = i
        if (l < a.length && less(a[l], a[m])) m = l
        if (r < a.length && less(a[r], a[m])) m = r
        if (m === i) break
        swap(a, i, m)
        i = m
      }
    }
    return top
  }

  /** Keeps only the items for which `keep` returns true (O(n log n)). */
  filter (keep: (item: T) => boolean): void {
    const kept = this.items.filter(keep)
    this.items.length = 0
    for (const it of kept) this.push(it)
  }
}

function less (x: Timed, y: Timed): boolean {
  return x.time < y.time || (x.time === y.time && x.seq < y.seq)
}

function swap<T> (a: T[], i: number, j: number): void {
  const t = a[i]
  a[i] = a[j]
  a[j] = t
}
