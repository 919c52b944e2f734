/** Options every call that can wait accepts. */
export interface CallOptions {
  /** Aborts the call; the promise rejects with an Aborted (or DeadlineExceeded) error. */
  signal?: AbortSignal
}

/** A minimal logger, shaped like @libp2p/logger's component logger (`DEBUG=dfs:*` enables it). */
export interface Logger {
  (formatter: string, ...args: unknown[]): void
  error: (formatter: string, ...args: unknown[]) => void
  trace: (formatter: string, ...args: unknown[]) => void
  enabled: boolean
}
