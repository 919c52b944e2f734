/**
 * Typed errors of dfs. One class per condition; callers and tests match on `.name`, never on the
 * message text. Every error carries its evidence in `details` (plain, CBOR/JSON-serialisable data), so
 * the same error can cross the RPC boundary: the remote side rebuilds the class from its name.
 */

export type ErrorDetails = Record<string, unknown>

/** Base class of every error dfs raises on purpose. */
export class DfsError extends Error {
  static readonly code: string = 'DfsError'
  readonly details: ErrorDetails

  constructor (message: string, details: ErrorDetails = {}, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'DfsError'
    this.details = details
  }
}

/** A file, directory, extent, node or key does not exist. */
export class NotFoundError extends DfsError {
  constructor (message: string, details: ErrorDetails = {}) {
    super(message, details)
    this.name = 'NotFound'
  }
}

/** The thing being created exists already. */
export class AlreadyExistsError extends DfsError {
  constructor (message: string, details: ErrorDetails = {}) {
    super(message, details)
    this.name = 'AlreadyExists'
  }
}

/** The authenticated peer may not perform the operation. */
export class PermissionDeniedError extends DfsError {
  constructor (message: string, details: ErrorDetails = {}) {
    super(message, details)
    this.name = 'PermissionDenied'
  }
}

/** Stored bytes do not match the checksum recorded with them. */
export class CorruptExtentError extends DfsError {
  constructor (readonly extentId: string, readonly expected: string, readonly actual: string, details: ErrorDetails = {}) {
    super(`extent ${extentId} is corrupt: expected checksum ${expected}, found ${actual}` +
      (typeof details.node === 'string' ? ` on node ${details.node}` : ''), { extentId, expected, actual, ...details })
    this.name = 'CorruptExtent'
  }
}

/** A request's arguments are malformed or out of range. */
export class InvalidArgumentError extends DfsError {
  constructor (message: string, details: ErrorDetails = {}) {
    super(message, details)
    this.name = 'InvalidArgument'
  }
}

/**
 * A range read starts past the end of the file (`details.offset`, `details.size`). A range that starts
 * at the end, or runs past it, is not this error: it is served empty, or clipped.
 */
export class InvalidRangeError extends DfsError {
  constructor (message: string, details: ErrorDetails = {}) {
    super(message, details)
    this.name = 'InvalidRange'
  }
}

/** A path names a directory where a file was expected (or the reverse, see NotADirectory). */
export class IsADirectoryError extends DfsError {
  constructor (message: string, details: ErrorDetails = {}) {
    super(message, details)
    this.name = 'IsADirectory'
  }
}

/** A path component that must be a directory is a file. */
export class NotADirectoryError extends DfsError {
  constructor (message: string, details: ErrorDetails = {}) {
    super(message, details)
    this.name = 'NotADirectory'
  }
}

/** A frame on the wire is larger than the protocol allows. */
export class FrameTooLargeError extends DfsError {
  constructor (message: string, details: ErrorDetails = {}) {
    super(message, details)
    this.name = 'FrameTooLarge'
  }
}

/** A frame on the wire could not be decoded, or arrived out of sequence. */
export class MalformedFrameError extends DfsError {
  constructor (message: string, details: ErrorDetails = {}) {
    super(message, details)
    this.name = 'MalformedFrame'
  }
}

/** A call did not finish before its deadline. */
export class DeadlineExceededError extends DfsError {
  constructor (message: string, details: ErrorDetails = {}) {
    super(message, details)
    this.name = 'DeadlineExceeded'
  }
}

/** The caller aborted the call through its AbortSignal. */
export class AbortedError extends DfsError {
  constructor (message = 'the operation was aborted', details: ErrorDetails = {}) {
    super(message, details)
    this.name = 'Aborted'
  }
}

/** A node could not be reached, or closed the connection before answering. */
export class NodeUnreachableError extends DfsError {
  constructor (message: string, details: ErrorDetails = {}) {
    super(message, details)
    this.name = 'NodeUnreachable'
  }
}

/** The service cannot serve the request right now (stopping, not yet started, overloaded). */
export class UnavailableError extends DfsError {
  constructor (message: string, details: ErrorDetails = {}) {
    super(message, details)
    this.name = 'Unavailable'
  }
}

/** Not enough replicas or voters answered to reach a quorum. */
export class NoQuorumError extends DfsError {
  constructor (message: string, details: ErrorDetails = {}) {
    super(message, details)
    this.name = 'NoQuorum'
  }
}

/** This node is not the leader of the Raft group that must handle the request. */
export class NotLeaderError extends DfsError {
  constructor (message: string, details: ErrorDetails = {}) {
    super(message, details)
    this.name = 'NotLeader'
  }
}

/** Another process holds the data directory. */
export class DataDirLockedError extends DfsError {
  constructor (message: string, details: ErrorDetails = {}) {
    super(message, details)
    this.name = 'DataDirLocked'
  }
}

/** The disk (or a configured fill limit) has no room for the write. */
export class StorageFullError extends DfsError {
  constructor (message: string, details: ErrorDetails = {}) {
    super(message, details)
    this.name = 'StorageFull'
  }
}

/** No plugin provides the service implementation asked for. */
export class UnknownServiceError extends DfsError {
  constructor (message: string, details: ErrorDetails = {}) {
    super(message, details)
    this.name = 'UnknownService'
  }
}

/** The RPC method does not exist on the node. */
export class UnknownMethodError extends DfsError {
  constructor (message: string, details: ErrorDetails = {}) {
    super(message, details)
    this.name = 'UnknownMethod'
  }
}

/** A join token is malformed, unknown, or its secret does not match. */
export class InvalidTokenError extends DfsError {
  constructor (message: string, details: ErrorDetails = {}) {
    super(message, details)
    this.name = 'InvalidToken'
  }
}

/** A join token was valid but has expired. */
export class TokenExpiredError extends DfsError {
  constructor (message: string, details: ErrorDetails = {}) {
    super(message, details)
    this.name = 'TokenExpired'
  }
}

/** A metadata operation reached a Raft group that does not own its shard (a routing bug or a forged op). */
export class WrongShardError extends DfsError {
  constructor (message: string, details: ErrorDetails = {}) {
    super(message, details)
    this.name = 'WrongShard'
  }
}

/** A local configuration or key file is unusable. */
export class ConfigError extends DfsError {
  constructor (message: string, details: ErrorDetails = {}) {
    super(message, details)
    this.name = 'ConfigError'
  }
}

/** A write would take a tenant past its byte or file quota; nothing was stored. */
export class QuotaExceededError extends DfsError {
  constructor (message: string, details: ErrorDetails = {}) {
    super(message, details)
    this.name = 'QuotaExceeded'
  }
}

/** The caller sent more requests than its rate allows; retry after `details.retryAfterMs`. */
export class RateLimitedError extends DfsError {
  constructor (message: string, details: ErrorDetails = {}) {
    super(message, details)
    this.name = 'RateLimited'
  }
}

/** The state does not allow the operation now (e.g. revoking the last admin, removing a tenant that holds files). */
export class FailedPreconditionError extends DfsError {
  constructor (message: string, details: ErrorDetails = {}) {
    super(message, details)
    this.name = 'FailedPrecondition'
  }
}

/**
 * The bytes received do not have the digest the caller said they have (`details.expected`,
 * `details.actual`, both base64 MD5 as HTTP's Content-MD5): nothing was stored.
 */
export class BadDigestError extends DfsError {
  constructor (message: string, details: ErrorDetails = {}) {
    super(message, details)
    this.name = 'BadDigest'
  }
}

/** A directory to remove still has entries (`details.entries`: how many). */
export class DirectoryNotEmptyError extends DfsError {
  constructor (message: string, details: ErrorDetails = {}) {
    super(message, details)
    this.name = 'DirectoryNotEmpty'
  }
}

/** A stored audit entry does not match the hash chain (`details.seq`: the first bad entry). */
export class AuditChainBrokenError extends DfsError {
  constructor (message: string, details: ErrorDetails = {}) {
    super(message, details)
    this.name = 'AuditChainBroken'
  }
}

/**
 * The peer at an address could not prove it belongs to the expected cluster (a join token's pin, or
 * the cluster the CLI remembered for that address).
 */
export class WrongClusterError extends DfsError {
  constructor (message: string, details: ErrorDetails = {}) {
    super(message, details)
    this.name = 'WrongCluster'
  }
}

/** The remote side failed with an error this build does not know by name. */
export class RemoteError extends DfsError {
  constructor (name: string, message: string, details: ErrorDetails = {}) {
    super(message, details)
    this.name = name
  }
}

/** The wire form of an error: what an RPC error frame carries. */
export interface WireError {
  name: string
  message: string
  details?: ErrorDetails
}

type ErrorBuilder = (message: string, details: ErrorDetails) => DfsError

const builders = new Map<string, ErrorBuilder>([
  ['NotFound', (m, d) => new NotFoundError(m, d)],
  ['AlreadyExists', (m, d) => new AlreadyExistsError(m, d)],
  ['PermissionDenied', (m, d) => new PermissionDeniedError(m, d)],
  ['CorruptExtent', (m, d) => {
    const { extentId, expected, actual, ...rest } = d
    const e = new CorruptExtentError(String(extentId), String(expected), String(actual), rest)
    e.message = m
    return e
  }],
  ['InvalidArgument', (m, d) => new InvalidArgumentError(m, d)],
  ['InvalidRange', (m, d) => new InvalidRangeError(m, d)],
  ['IsADirectory', (m, d) => new IsADirectoryError(m, d)],
  ['NotADirectory', (m, d) => new NotADirectoryError(m, d)],
  ['FrameTooLarge', (m, d) => new FrameTooLargeError(m, d)],
  ['MalformedFrame', (m, d) => new MalformedFrameError(m, d)],
  ['DeadlineExceeded', (m, d) => new DeadlineExceededError(m, d)],
  ['Aborted', (m, d) => new AbortedError(m, d)],
  ['NodeUnreachable', (m, d) => new NodeUnreachableError(m, d)],
  ['Unavailable', (m, d) => new UnavailableError(m, d)],
  ['NoQuorum', (m, d) => new NoQuorumError(m, d)],
  ['NotLeader', (m, d) => new NotLeaderError(m, d)],
  ['DataDirLocked', (m, d) => new DataDirLockedError(m, d)],
  ['StorageFull', (m, d) => new StorageFullError(m, d)],
  ['UnknownService', (m, d) => new UnknownServiceError(m, d)],
  ['UnknownMethod', (m, d) => new UnknownMethodError(m, d)],
  ['ConfigError', (m, d) => new ConfigError(m, d)],
  ['InvalidToken', (m, d) => new InvalidTokenError(m, d)],
  ['TokenExpired', (m, d) => new TokenExpiredError(m, d)],
  ['WrongShard', (m, d) => new WrongShardError(m, d)],
  ['QuotaExceeded', (m, d) => new QuotaExceededError(m, d)],
  ['RateLimited', (m, d) => new RateLimitedError(m, d)],
  ['FailedPrecondition', (m, d) => new FailedPreconditionError(m, d)],
  ['AuditChainBroken', (m, d) => new AuditChainBrokenError(m, d)],
  ['WrongCluster', (m, d) => new WrongClusterError(m, d)],
  ['BadDigest', (m, d) => new BadDigestError(m, d)],
  ['DirectoryNotEmpty', (m, d) => new DirectoryNotEmptyError(m, d)]
])

/** Turns any thrown value into the wire form. Unexpected errors keep their name but not their stack. */
export function errorToWire (err: unknown): WireError {
  if (err instanceof DfsError) {
    return { name: err.name, message: err.message, details: err.details }
  }
  if (err instanceof Error) {
    return { name: err.name === 'Error' ? 'InternalError' : err.name, message: err.message }
  }
  return { name: 'InternalError', message: String(err) }
}

/** Rebuilds a typed error from its wire form; unknown names become a RemoteError with that name. */
export function errorFromWire (wire: WireError): DfsError {
  const name = typeof wire.name === 'string' && wire.name.length > 0 ? wire.name : 'InternalError'
  const message = typeof wire.message === 'string' ? wire.message : ''
  const details = wire.details != null && typeof wire.details === 'object' ? wire.details : {}
  const build = builders.get(name)
  return build != null ? build(message, details) : new RemoteError(name, message, details)
}

/** True if `err` is an error whose name is `name`: the one way to test for a condition. */
export function isError (err: unknown, name: string): err is DfsError {
  return err instanceof Error && err.name === name
}
