/**
 * Errors of the S3 API, as S3 clients read them: an HTTP status and an error code in an XML body
 * (`<Error><Code>…</Code><Message>…</Message>…</Error>`). Every refusal of the gateway is one of
 * these; a dfs error from a FileService call is translated by `fromDfsError`.
 */

export interface S3ErrorInit {
  /** Extra fields of the XML body (e.g. `Key`, `BucketName`, `StringToSign`): evidence for the client. */
  fields?: Record<string, string>
  cause?: unknown
}

/** An S3 error code with the HTTP status S3 answers it with. Matched on `.name` ('S3Error') and `.code`. */
export class S3Error extends Error {
  readonly code: string
  readonly status: number
  readonly fields: Record<string, string>

  constructor (code: string, status: number, message: string, init: S3ErrorInit = {}) {
    super(message, init.cause !== undefined ? { cause: init.cause } : undefined)
    this.name = 'S3Error'
    this.code = code
    this.status = status
    this.fields = init.fields ?? {}
  }
}

/** The codes this gateway answers, with their statuses (as AWS documents them). */
export const S3_ERRORS = {
  AccessDenied: 403,
  AuthorizationHeaderMalformed: 400,
  BadDigest: 400,
  BucketAlreadyExists: 409,
  BucketAlreadyOwnedByYou: 409,
  BucketNotEmpty: 409,
  EntityTooLarge: 400,
  EntityTooSmall: 400,
  ExpiredToken: 400,
  IncompleteBody: 400,
  InternalError: 500,
  InvalidAccessKeyId: 403,
  InvalidArgument: 400,
  InvalidBucketName: 400,
  InvalidDigest: 400,
  InvalidPart: 400,
  InvalidPartOrder: 400,
  InvalidRange: 416,
  InvalidRequest: 400,
  KeyTooLongError: 400,
  MalformedXML: 400,
  MetadataTooLarge: 400,
  MethodNotAllowed: 405,
  MissingContentLength: 411,
  MissingSecurityHeader: 400,
  NoSuchBucket: 404,
  NoSuchKey: 404,
  NoSuchUpload: 404,
  NotImplemented: 501,
  PreconditionFailed: 412,
  RequestTimeTooSkewed: 403,
  ServiceUnavailable: 503,
  SignatureDoesNotMatch: 403,
  SlowDown: 503,
  XAmzContentSHA256Mismatch: 400
} as const satisfies Record<string, number>

export type S3ErrorCode = keyof typeof S3_ERRORS

/** An S3Error of one of the known codes, with its status. */
export function s3Error (code: S3ErrorCode, message: string, init: S3ErrorInit = {}): S3Error {
  return new S3Error(code, S3_ERRORS[code], message, init)
}
