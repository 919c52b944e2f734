import { AbortedError, DeadlineExceededError } from './errors.js'

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

/**
 * Throws the typed error for a signal that fired before a call started: DeadlineExceeded when it
 * was a timeout (AbortSignal.timeout), else Aborted.
 */
export function throwIfAborted (signal: AbortSignal | undefined): void {
  if (signal?.aborted !== true) return
  const reason: unknown = signal.reason
  if (reason instanceof Error && reason.name === 'TimeoutError') {
    throw new DeadlineExceededError('the deadline of the call passed before it started')
  }
  throw new AbortedError()
}
