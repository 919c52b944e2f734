/**
 * What the stores that write with O_DIRECT share — the level store's extent files and the Raft log's
 * write-ahead log (two plugins that cannot import each other): the alignment direct I/O demands,
 * memory with that alignment, telling the kernel's refusal of direct I/O from other failures, and
 * the fsync of a directory that makes the names of new files durable.
 */
import { constants } from 'node:fs'
import { open } from 'node:fs/promises'

/**
 * Alignment of direct I/O buffers, file offsets and lengths: the device's logical block (512 bytes
 * here); 4 KiB covers every common device.
 */
export const DIRECT_IO_ALIGN = 4096

/** `n` rounded up to a multiple of `to`. */
export function alignUp (n: number, to: number = DIRECT_IO_ALIGN): number {
  return Math.ceil(n / to) * to
}

// the part of the WebAssembly API used here (the project's TypeScript libs leave WebAssembly out)
declare const WebAssembly: { Memory: new (descriptor: { initial: number, maximum: number }) => { buffer: ArrayBuffer } }

/** Pages of a WebAssembly memory. */
const WASM_PAGE_BYTES = 65536

/**
 * Zero-filled memory of at least `bytes` (whole 64 KiB pages) whose start is page-aligned, so also
 * DIRECT_IO_ALIGN-aligned. JavaScript cannot ask for an aligned allocation, but a
 * WebAssembly.Memory's buffer is page-aligned: V8 maps it whole. Throws (a RangeError) when the
 * process has no address space for it (under `ulimit -v`: V8 reserves room around a memory).
 */
export function alignedMemory (bytes: number): ArrayBuffer {
  const pages = Math.max(1, Math.ceil(bytes / WASM_PAGE_BYTES))
  return new WebAssembly.Memory({ initial: pages, maximum: pages }).buffer
}

/**
 * Whether `err` is the kernel refusing direct I/O: EINVAL at open on a file system without
 * O_DIRECT (tmpfs), or at a read or write whose buffer, offset or length is misaligned.
 */
export function refusesDirect (err: unknown): boolean {
  return (err as { code?: unknown })?.code === 'EINVAL'
}

/** fsyncs the directory `dir`, so that the names of files created or renamed in it survive a crash. */
export async function syncDir (dir: string): Promise<void> {
  const handle = await open(dir, constants.O_RDONLY | constants.O_DIRECTORY)
  try {
    await handle.sync()
  } finally {
    await handle.close()
  }
}
