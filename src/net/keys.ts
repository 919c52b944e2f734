import { randomBytes } from 'node:crypto'
import { chmod, link, mkdir, open, readFile, stat, unlink } from 'node:fs/promises'
import { dirname } from 'node:path'
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { ConfigError, NotFoundError } from '@dfs/api'
import type { PrivateKey } from '@libp2p/interface'

/**
 * Ed25519 identity keys on disk: the protobuf encoding of the private key, mode 0600, like an SSH key.
 * A key file that others may read is refused, because whoever reads it can act as that PeerId.
 */

export async function readKeyFile (path: string): Promise<PrivateKey> {
  let bytes: Uint8Array
  try {
    const info = await stat(path)
    if ((info.mode & 0o077) !== 0) {
      throw new ConfigError(`key file ${path} is readable by other users (mode ${(info.mode & 0o777).toString(8)}); run: chmod 600 ${path}`, { path })
    }
    bytes = await readFile(path)
  } catch (err) {
    if ((err as NodeJS.ErrnoException)?.code === 'ENOENT') throw new NotFoundError(`key file ${path} does not exist`, { path })
    if ((err as NodeJS.ErrnoException)?.code === 'EACCES') throw new ConfigError(`key file ${path} cannot be read: permission denied`, { path })
    throw err
  }
  try {
    const key = privateKeyFromProtobuf(bytes)
    if (key.type !== 'Ed25519') throw new Error(`key type ${key.type}`)
    return key
  } catch (err) {
    throw new ConfigError(`key file ${path} does not hold an Ed25519 private key (${(err as Error).message})`, { path })
  }
}

/** Reads the key at `path`, or creates a new Ed25519 key there (atomically, mode 0600) if none exists. */
export async function loadOrCreateKey (path: string): Promise<{ key: PrivateKey, created: boolean }> {
  try {
    return { key: await readKeyFile(path), created: false }
  } catch (err) {
    if ((err as Error)?.name !== 'NotFound') throw err
  }
  await mkdir(dirname(path), { recursive: true, mode: 0o700 })
  const key = await generateKeyPair('Ed25519')
  const tmp = `${path}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`
  const fh = await open(tmp, 'wx', 0o600)
  try {
    await fh.writeFile(privateKeyToProtobuf(key))
    await fh.sync()
  } finally {
    await fh.close()
  }
  await chmod(tmp, 0o600)
  try {
    // link fails with EEXIST when another process created the key meanwhile: then theirs wins
    await link(tmp, path)
  } catch (err) {
    if ((err as NodeJS.ErrnoException)?.code !== 'EEXIST') throw err
    return { key: await readKeyFile(path), created: false }
  } finally {
    await unlink(tmp).catch(() => {})
  }
  return { key, created: true }
}

export function peerIdString (key: PrivateKey): string {
  return peerIdFromPrivateKey(key).toString()
}
