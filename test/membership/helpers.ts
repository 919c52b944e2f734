import { generateKeyPair } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import { createHost, type NodeHost } from '../../src/net/host.js'

/**
 * Polls `condition` until it holds, failing with `what` (and the last error the condition threw)
 * after `timeoutMs`. The synchronisation of every libp2p test here: never a bare sleep.
 */
export async function waitFor (what: string, condition: () => boolean | Promise<boolean>, timeoutMs = 5000, intervalMs = 20): Promise<void> {
  const deadline = performance.now() + timeoutMs
  let lastError: unknown
  while (true) {
    try {
      if (await condition()) return
    } catch (err) {
      lastError = err
    }
    if (performance.now() >= deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}` + (lastError == null ? '' : ` (last error: ${String((lastError as Error).message ?? lastError)})`))
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs))
  }
}

/** A node host on 127.0.0.1 with a free port (a new key unless one is given). */
export async function startNodeHost (key?: PrivateKey): Promise<NodeHost> {
  return createHost({ role: 'node', privateKey: key ?? await generateKeyPair('Ed25519'), listen: ['/ip4/127.0.0.1/tcp/0'] })
}

/** `127.0.0.1:<port>` of a host's first TCP address (what an operator passes to `--peers`). */
export function hostPort (host: NodeHost): string {
  const ma = host.getMultiaddrs().find((a) => a.toString().startsWith('/ip4/127.0.0.1/tcp/'))
  if (ma == null) throw new Error('host does not listen on 127.0.0.1')
  return `127.0.0.1:${ma.toString().split('/')[4]}`
}

/** Runs the registered clean-ups in reverse order, all of them even if some fail. */
export class Cleanup {
  readonly #steps: Array<() => Promise<void> | void> = []
  add (step: () => Promise<void> | void): void {
    this.#steps.push(step)
  }

  async run (): Promise<void> {
    const errors: unknown[] = []
    while (this.#steps.length > 0) {
      const step = this.#steps.pop() as () => Promise<void> | void
      try { await step() } catch (err) { errors.push(err) }
    }
    if (errors.length > 0) throw new AggregateError(errors, 'clean-up failed')
  }
}
