import type {
  DownloadMethodName, RpcActionOf, RpcMethodName, RpcResult, RpcValidatedParams, UnaryMethodName, UploadMethodName
} from '@dfs/api'
import type { DownloadReply, RpcContext, RpcMethod, UploadContext } from './types.js'

/** What every method of the RPC contract defines, whatever its kind. */
interface MethodDefinitionBase<M extends RpcMethodName, P extends RpcValidatedParams<M>> {
  /** The action `src/security` authorizes before the handler runs: the contract's for `M`. */
  action: RpcActionOf<M>
  /** Checks untrusted params and returns them typed; throws InvalidArgument. */
  params: (raw: unknown) => P
}

export interface UnaryDefinition<M extends UnaryMethodName, P extends RpcValidatedParams<M>> extends MethodDefinitionBase<M, P> {
  kind: 'unary'
  handle: (ctx: RpcContext<P>) => Promise<RpcResult<M>>
}

export interface UploadDefinition<M extends UploadMethodName, P extends RpcValidatedParams<M>> extends MethodDefinitionBase<M, P> {
  kind: 'upload'
  handle: (ctx: UploadContext<P>) => Promise<RpcResult<M>>
}

export interface DownloadDefinition<M extends DownloadMethodName, P extends RpcValidatedParams<M>> extends MethodDefinitionBase<M, P> {
  kind: 'download'
  handle: (ctx: RpcContext<P>) => Promise<DownloadReply<RpcResult<M>>>
}

/**
 * A server method typed by the RPC contract (`RpcContract` in `@dfs/api`): its kind, its action, the
 * params its validator returns and the result its handler answers must be the contract's for `name`,
 * or it does not compile. `P` is what the validator returns and the handler sees: the contract's
 * params with defaults filled in, or narrower (see RpcValidatedParams).
 *
 * One overload per kind (rather than one signature whose handler type depends on the kind): that is
 * what lets `P` be inferred from the validator before the handler is checked against it.
 */
export function defineMethod<M extends UnaryMethodName, P extends RpcValidatedParams<M>> (name: M, def: UnaryDefinition<M, P>): RpcMethod
export function defineMethod<M extends UploadMethodName, P extends RpcValidatedParams<M>> (name: M, def: UploadDefinition<M, P>): RpcMethod
export function defineMethod<M extends DownloadMethodName, P extends RpcValidatedParams<M>> (name: M, def: DownloadDefinition<M, P>): RpcMethod
export function defineMethod (name: RpcMethodName, def: { action: string, kind: RpcMethod['kind'], params: (raw: unknown) => unknown, handle: (ctx: never) => Promise<unknown> }): RpcMethod {
  return { name, action: def.action, kind: def.kind, params: def.params, handle: def.handle } as RpcMethod
}
