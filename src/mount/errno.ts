import { constants } from 'node:os'

/**
 * How the mount answers the kernel: dfs's typed errors (matched on `.name`, never on message text)
 * and local file system errors (a spool file's `.code`) as a negative errno. Anything else is EIO:
 * the caller sees an I/O error, never a made-up success.
 */

const E = constants.errno

/** dfs error names and the errno each becomes. */
const BY_NAME: ReadonlyMap<string, number> = new Map([
  ['NotFound', E.ENOENT],
  ['PermissionDenied', E.EACCES],
  ['ReadOnlyMount', E.EROFS],
  ['QuotaExceeded', E.EDQUOT],
  ['AlreadyExists', E.EEXIST],
  ['IsADirectory', E.EISDIR],
  ['NotADirectory', E.ENOTDIR],
  ['DirectoryNotEmpty', E.ENOTEMPTY],
  ['InvalidArgument', E.EINVAL],
  ['StorageFull', E.ENOSPC],
  ['CrossDevice', E.EXDEV],
  ['TooManyOpenFiles', E.EMFILE],
  ['BadHandle', E.EBADF],
  ['StaleFile', E.ESTALE],
  // the cluster could not give a correct answer: an I/O error, never wrong bytes
  ['CorruptExtent', E.EIO],
  ['NoQuorum', E.EIO],
  ['NodeUnreachable', E.EIO],
  ['DeadlineExceeded', E.EIO],
  ['Unavailable', E.EIO],
  ['NotLeader', E.EIO],
  ['MalformedFrame', E.EIO],
  ['RateLimited', E.EIO]
])

/** Local errors (Node's `.code`) passed on as they are: the spool's disk is full, and the like. */
const BY_CODE: ReadonlySet<string> = new Set(['ENOSPC', 'EDQUOT', 'EACCES', 'EROFS', 'EMFILE', 'ENFILE', 'EFBIG'])

/** The negative errno the kernel gets for `err`. */
export function errnoOf (err: unknown): number {
  if (err instanceof Error) {
    const byName = BY_NAME.get(err.name)
    if (byName !== undefined) return -byName
    const code = (err as NodeJS.ErrnoException).code
    if (typeof code === 'string' && BY_CODE.has(code)) {
      const n = (E as Record<string, number | undefined>)[code]
      if (n !== undefined) return -n
    }
  }
  return -E.EIO
}

/** A negative errno by its name (`errno('ENOENT')`), for the answers the mount gives itself. */
export function errno (name: keyof typeof constants.errno): number {
  return -E[name]
}
