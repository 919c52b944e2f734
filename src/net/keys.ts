import { randomBytes } from 'node:crypto'
import { chmod, link, mkdir, open, readFile, rename, stat, unlink } from 'node:fs/promises'
import { dirname } from 'node:path'
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { AlreadyExistsError, ConfigError, NotFoundError } from '@dfs/api'
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
  const key = await generateKeyPair('Ed25519')
  if (!(await placeKey(path, key, false))) return { key: await readKeyFile(path), created: false }
  return { key, created: true }
}

/**
 * Reads the identity key at `path`. With `create`, a missing key is made (loadOrCreateKey); without,
 * a missing key is a ConfigError that says how to make one: an identity named explicitly
 * (DFS_IDENTITY) is never replaced by a new one behind the user's back, since a new key is a
 * different user with none of the old one's grants.
 */
export async function loadIdentityKey (path: string, options: { create: boolean }): Promise<{ key: PrivateKey, created: boolean }> {
  if (options.create) return await loadOrCreateKey(path)
  try {
    return { key: await readKeyFile(path), created: false }
  } catch (err) {
    if ((err as Error)?.name !== 'NotFound') throw err
    throw new ConfigError(`no identity key at ${path} (DFS_IDENTITY): create one with \`dfs identity create\`, or point DFS_IDENTITY at an existing key`, { path })
  }
}

/**
 * Makes a new Ed25519 key at `path` (mode 0600, its directory created 0700). An existing file is
 * refused with AlreadyExists unless `force`, which replaces it atomically.
 */
export async function createKeyFile (path: string, options: { force?: boolean } = {}): Promise<PrivateKey> {
  const key = await generateKeyPair('Ed25519')
  if (!(await placeKey(path, key, options.force === true))) {
    throw new AlreadyExistsError(`${path} exists already: pass --force to replace it (the identity it holds is lost)`, { path })
  }
  return key
}

/**
 * Writes `key` to a private temporary file, fsyncs it, and moves it to `path`: with `replace` by
 * rename (atomic), otherwise by link, which leaves an existing file in place and resolves false.
 */
async function placeKey (path: string, key: PrivateKey, replace: boolean): Promise<boolean> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 })
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
    if (replace) {
      await rename(tmp, path)
      return true
    }
    // link fails with EEXIST when the file exists (another process may have just created it)
    await link(tmp, path)
    return true
  } catch (err) {
    if ((err as NodeJS.ErrnoException)?.code !== 'EEXIST') throw err
    return false
  } finally {
    await unlink(tmp).catch(() => {})
  }
}

export function peerIdString (key: PrivateKey): string {
  return peerIdFromPrivateKey(key).toString()
}
