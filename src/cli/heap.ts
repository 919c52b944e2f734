import { setFlagsFromString } from 'node:v8'

/**
 * Old-generation growth of the processes that stream bytes (`dfs node start`, `dfs mount`, `dfs fs
 * put/get`): the heap may grow to (1 + HEAP_GROWING_PERCENT / 100) times what the last full
 * collection left live before V8 starts the next one.
 *
 * WHY. These processes keep a small live heap (~20 MB) and move hundreds of MiB a second through
 * Buffers: Noise decryption, LevelDB values, FUSE request buffers. V8 lets the old generation grow
 * by its adaptive factor, which on such a heap left the limit ~9–12 MB above the live size, and the
 * external memory of those Buffers used that room up every few MiB moved: reading 256 MiB through
 * the mount ran ~35 full mark-compacts whose concurrent marking cost the mount 1.1 s of CPU on the
 * GC helper threads (its whole read cost 2.5–3.2 s), and the serving node up to as much again. At
 * 4× (V8's own ceiling for the adaptive factor) the same read runs 2–3, with nothing else changed
 * (the mount run with `--trace-gc` during a `dd` of 256 MiB; throughput figures in the README). The
 * cost is memory: up to four times the live heap before a full collection, ~80 MB for a ~20 MB heap.
 *
 * V8 reads the flag whenever it computes a new limit, so setting it at start-up works; an operator's
 * own `--heap-growing-percent` on the node command line is left alone.
 */
export const HEAP_GROWING_PERCENT = 300

/** Applies HEAP_GROWING_PERCENT unless the process was started with its own value. */
export function tuneHeapForStreaming (execArgv: readonly string[] = process.execArgv): void {
  if (execArgv.some((a) => /^--heap[-_]growing[-_]percent(=|$)/.test(a))) return
  setFlagsFromString(`--heap-growing-percent=${HEAP_GROWING_PERCENT}`)
}
