/**
 * FNV-1a (32-bit) hashing for trace digests and entry fingerprints. Deterministic and cheap; collisions
 * are possible in principle but a sim compares few values per key, so they would only hide a bug, never
 * invent one.
 */
const FNV_OFFSET = 0x811c9dc5
const FNV_PRIME = 0x01000193

export function fnvBytes (bytes: Uint8Array, h: number = FNV_OFFSET): number {
  for (let i = 0; i < bytes.length; i++) {
    h ^= bytes[i]
    h = Math.imul(h, FNV_PRIME)
  }
  return h >>> 0
}

export function fnvString (s: string, h: number = FNV_OFFSET): number {
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i) & 0xff
    h = Math.imul(h, FNV_PRIME)
    h ^= s.charCodeAt(i) >>> 8
    h = Math.imul(h, FNV_PRIME)
  }
  return h >>> 0
}

/** Mixes a 32-bit integer into a running hash. */
export function fnvInt (n: number, h: number = FNV_OFFSET): number {
  n = n >>> 0
  for (let k = 0; k < 4; k++) {
    h ^= n & 0xff
    h = Math.imul(h, FNV_PRIME)
    n >>>= 8
  }
  return h >>> 0
}

export function hex32 (n: number): string {
  return (n >>> 0).toString(16).padStart(8, '0')
}
