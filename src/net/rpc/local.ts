import type { DownloadMethodName, RpcParams, RpcResult, UnaryMethodName, UploadMethodName } from '@dfs/api'
import type { RpcServer } from './server.js'

/** Options of a call made through LocalRpc. */
export interface LocalRpcOptions {
  signal?: AbortSignal
  timeoutMs?: number
}

/**
 * The RPC contract as one authenticated peer calls it from inside this node (see
 * RpcServer.invokeLocal): what an access layer — the S3 gateway — uses once its own protocol has
 * proved which dfs user a request comes from. Every call passes the same interceptors (authorization,
 * rate limits, audit) as one from the network.
 */
export class LocalRpc {
  readonly #server: RpcServer
  readonly peer: string

  constructor (server: RpcServer, peer: string) {
    this.#server = server
    this.peer = peer
  }

  async call<M extends UnaryMethodName> (method: M, params: RpcParams<M>, options: LocalRpcOptions = {}): Promise<RpcResult<M>> {
    const { result } = await this.#server.invokeLocal(this.peer, method, params, options)
    return result as RpcResult<M>
  }

  async upload<M extends UploadMethodName> (method: M, params: RpcParams<M>, body: AsyncIterable<Uint8Array>, options: LocalRpcOptions = {}): Promise<RpcResult<M>> {
    const { result } = await this.#server.invokeLocal(this.peer, method, params, { ...options, body })
    return result as RpcResult<M>
  }

  /** Start reading `body` (see LocalCallResult.body): only then does the call end when it is left. */
  async download<M extends DownloadMethodName> (method: M, params: RpcParams<M>, options: LocalRpcOptions = {}): Promise<{ result: RpcResult<M>, body: AsyncGenerator<Uint8Array> }> {
    const { result, body } = await this.#server.invokeLocal(this.peer, method, params, options)
    if (body === undefined) throw new Error(`${method} answered no body`)
    return { result: result as RpcResult<M>, body }
  }
}
