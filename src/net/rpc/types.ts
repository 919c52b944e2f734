import type { CallOptions } from '@dfs/api'

/** What a handler knows about the call it serves. */
export interface RpcContext<P> {
  /** The PeerId that Noise authenticated on the connection: the caller's proven identity. */
  peer: string
  params: P
  /** Aborted when the call's deadline passes or the caller goes away. */
  signal: AbortSignal
}

export interface UploadContext<P> extends RpcContext<P> {
  /** The caller's bulk bytes, chunk by chunk, under flow control. Must be consumed to the end. */
  body: AsyncIterable<Uint8Array>
}

export interface DownloadReply<R> {
  result: R
  body: AsyncIterable<Uint8Array>
}

interface MethodBase<P> {
  name: string
  /** The action `src/security` authorizes before the handler runs (e.g. `fs.read`). */
  action: string
  /** Checks untrusted params and returns them typed; throws InvalidArgument. */
  params: (raw: unknown) => P
}

export interface UnaryMethod<P, R> extends MethodBase<P> {
  kind: 'unary'
  handle: (ctx: RpcContext<P>) => Promise<R>
}

export interface UploadMethod<P, R> extends MethodBase<P> {
  kind: 'upload'
  handle: (ctx: UploadContext<P>) => Promise<R>
}

export interface DownloadMethod<P, R> extends MethodBase<P> {
  kind: 'download'
  handle: (ctx: RpcContext<P>) => Promise<DownloadReply<R>>
}

/**
 * A method as the server registers it. The node's methods are built with `defineMethod`, which types
 * them by the RPC contract (`RpcContract` in `@dfs/api`); the server itself serves any method.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- P is the validator's result and the handler's input: only any erases it
export type RpcMethod = UnaryMethod<any, unknown> | UploadMethod<any, unknown> | DownloadMethod<any, unknown>

/** Decides whether `peer` may perform `action`; throws PermissionDenied otherwise. */
export type Authorizer = (peer: string, action: string, options?: CallOptions) => Promise<void>
