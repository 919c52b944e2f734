import { DfsError, type ErrorDetails } from '@dfs/api'

/**
 * The mount's own conditions. Like every dfs error they are matched on `.name` (errno.ts maps each to
 * its errno); they never cross the RPC boundary, so they live beside the mount rather than in the API.
 */

/** FUSE cannot be used here: `details.missing` says what (the kernel module, /dev/fuse, fusermount, the binding). */
export class FuseUnavailableError extends DfsError {
  constructor (message: string, details: ErrorDetails = {}) {
    super(message, details)
    this.name = 'FuseUnavailable'
  }
}

/** A write through a mount made with `--read-only` (EROFS). */
export class ReadOnlyMountError extends DfsError {
  constructor (message: string, details: ErrorDetails = {}) {
    super(message, details)
    this.name = 'ReadOnlyMount'
  }
}

/** A rename between two top-level directories, which dfs cannot do atomically (EXDEV: `mv` then copies). */
export class CrossDeviceError extends DfsError {
  constructor (message: string, details: ErrorDetails = {}) {
    super(message, details)
    this.name = 'CrossDevice'
  }
}

/** More files open through the mount than MOUNT_HANDLES_MAX (EMFILE). */
export class TooManyOpenFilesError extends DfsError {
  constructor (message: string, details: ErrorDetails = {}) {
    super(message, details)
    this.name = 'TooManyOpenFiles'
  }
}

/** A file handle the mount does not know (EBADF): a kernel request after its release. */
export class BadHandleError extends DfsError {
  constructor (message: string, details: ErrorDetails = {}) {
    super(message, details)
    this.name = 'BadHandle'
  }
}

/** The mount point cannot be mounted: in use by a live mount, not a directory, or the mount failed. */
export class MountFailedError extends DfsError {
  constructor (message: string, details: ErrorDetails = {}) {
    super(message, details)
    this.name = 'MountFailed'
  }
}

/** A file replaced by another writer while open for reading (ESTALE): its reader never gets a mix of versions. */
export class StaleFileError extends DfsError {
  constructor (message: string, details: ErrorDetails = {}) {
    super(message, details)
    this.name = 'StaleFile'
  }
}
