import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, sign, verify, type KeyObject } from 'node:crypto'
import { InvalidArgumentError, WrongClusterError, type ClusterKey } from '@dfs/api'

/**
 * The cluster key proves which cluster a node belongs to. A join token carries a pin of its public
 * half, and the CLI remembers one per node address (see src/client/known-clusters.ts); a member
 * proves the cluster by answering `cluster.identify` with a signature over a fresh nonce and over
 * the PeerIds of both ends of the connection, both of which Noise proved. So an answer cannot be
 * replayed (the nonce) nor relayed by an impostor between its victim and a real member (the
 * member signs the impostor's PeerId as the caller, which is not the victim's own).
 */

/** Characters of base64url(sha256(raw public key)) a pin keeps: 22 characters are 132 bits. */
export const CLUSTER_PIN_LENGTH = 22

/** What `cluster.identify` signs before its fields; no other signature of the cluster key starts so. */
const IDENTIFY_DOMAIN = 'dfs/cluster-identify/v1'

/** A nonce is base64url of 16 to 64 random bytes. */
const NONCE_PATTERN = /^[A-Za-z0-9_-]{22,86}$/
const NONCE_BYTES = 24

const BASE64URL = /^[A-Za-z0-9_-]*$/
/** base64url of a raw Ed25519 public key (32 bytes) and of a signature (64 bytes). */
const PUBLIC_KEY_LENGTH = 43
const SIGNATURE_LENGTH = 86

/** A new Ed25519 cluster key. */
export function generateClusterKey (): ClusterKey {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519')
  const jwk = publicKey.export({ format: 'jwk' })
  if (typeof jwk.x !== 'string' || jwk.x.length !== PUBLIC_KEY_LENGTH) throw new Error('invariant: an Ed25519 public key is 32 bytes')
  return { publicKey: jwk.x, privateKey: privateKey.export({ format: 'der', type: 'pkcs8' }).toString('base64url') }
}

/** The pin of a public key (base64url of the raw key): the start of base64url(sha256(raw key)). */
export function clusterPin (publicKey: string): string {
  return createHash('sha256').update(Buffer.from(publicKey, 'base64url')).digest('base64url').slice(0, CLUSTER_PIN_LENGTH)
}

/** A fresh nonce for `cluster.identify`. */
export function identifyNonce (): string {
  return randomBytes(NONCE_BYTES).toString('base64url')
}

/** Checks a nonce a caller sent (InvalidArgument otherwise). */
export function requireNonce (nonce: unknown): string {
  if (typeof nonce !== 'string' || !NONCE_PATTERN.test(nonce)) {
    throw new InvalidArgumentError('nonce must be base64url of 16 to 64 bytes', { field: 'nonce' })
  }
  return nonce
}

/** What a member answers to `cluster.identify`. */
export interface ClusterProof {
  clusterId: string
  /** base64url of the raw public key. */
  publicKey: string
  /** base64url of the Ed25519 signature of identifyMessage(...). */
  signature: string
}

/** The exact bytes signed: the domain, then each field as a 4-byte big-endian length and its UTF-8. */
export function identifyMessage (fields: { clusterId: string, nonce: string, caller: string, server: string }): Buffer {
  const parts = [IDENTIFY_DOMAIN, fields.clusterId, fields.nonce, fields.caller, fields.server].map((s) => Buffer.from(s, 'utf8'))
  const out: Buffer[] = []
  for (const p of parts) {
    const len = Buffer.alloc(4)
    len.writeUInt32BE(p.length)
    out.push(len, p)
  }
  return Buffer.concat(out)
}

/** Signs the proof of `clusterId` for a caller and a server PeerId (this node's). */
export function proveCluster (key: ClusterKey, fields: { clusterId: string, nonce: string, caller: string, server: string }): ClusterProof {
  const privateKey = createPrivateKey({ key: Buffer.from(key.privateKey, 'base64url'), format: 'der', type: 'pkcs8' })
  const signature = sign(null, identifyMessage(fields), privateKey).toString('base64url')
  return { clusterId: fields.clusterId, publicKey: key.publicKey, signature }
}

/**
 * Checks a proof received from the node `server` in answer to `nonce` sent by `caller`: it must be
 * well formed and signed by its own public key over exactly these fields, and that key must match
 * `pin` when one is expected. Returns the proof's pin; WrongCluster otherwise (an impostor, a relay,
 * a replay or a node of another cluster).
 */
export function verifyClusterProof (proof: unknown, expected: { nonce: string, caller: string, server: string, pin?: string }): { clusterId: string, pin: string } {
  const p = proof as Partial<Record<keyof ClusterProof, unknown>> | null
  const details = { peer: expected.server }
  if (p == null || typeof p !== 'object' || typeof p.clusterId !== 'string' || p.clusterId.length === 0 || p.clusterId.length > 256 ||
    typeof p.publicKey !== 'string' || p.publicKey.length !== PUBLIC_KEY_LENGTH || !BASE64URL.test(p.publicKey) ||
    typeof p.signature !== 'string' || p.signature.length !== SIGNATURE_LENGTH || !BASE64URL.test(p.signature)) {
    throw new WrongClusterError(`node ${expected.server} sent a malformed cluster proof`, details)
  }
  const pin = clusterPin(p.publicKey)
  if (expected.pin !== undefined && pin !== expected.pin) {
    throw new WrongClusterError(`node ${expected.server} belongs to another cluster (its key's pin ${pin} is not the expected ${expected.pin})`,
      { ...details, pin, expectedPin: expected.pin })
  }
  let key: KeyObject
  try {
    key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: p.publicKey }, format: 'jwk' })
  } catch {
    throw new WrongClusterError(`node ${expected.server} sent a public key that is not an Ed25519 key`, details)
  }
  const message = identifyMessage({ clusterId: p.clusterId, nonce: expected.nonce, caller: expected.caller, server: expected.server })
  if (!verify(null, message, key, Buffer.from(p.signature, 'base64url'))) {
    throw new WrongClusterError(`node ${expected.server} could not prove its cluster (the signature does not cover this connection)`, details)
  }
  return { clusterId: p.clusterId, pin }
}
