import { createHash } from 'node:crypto'

/**
 * A rank for `node` among equally good nodes for `extent`: the first 8 bytes of SHA-256 over both
 * ids, as hex (rendezvous hashing). Equal nodes then share new extents evenly instead of the first by
 * id taking every one, and every node computes the same rank.
 */
export function tieRank (extent: string, node: string): string {
  return createHash('sha256').update(extent).update('\n').update(node).digest('hex').slice(0, 16)
}
