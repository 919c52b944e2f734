/** Write a snapshot and drop the log before it every this many applied operations. */
export const COMPACT_EVERY_DEFAULT = 10_000
/** Most operations in one fsync'd log batch. */
export const BATCH_OPS_MAX_DEFAULT = 1024
/** Most encoded bytes in one log batch (a single larger operation still goes alone). */
export const BATCH_BYTES_MAX_DEFAULT = 4 * 1024 * 1024
/** Most proposals waiting for a batch; beyond it propose fails with Unavailable. */
export const QUEUE_MAX_DEFAULT = 8192
/** Largest encoded operation accepted. */
export const OP_BYTES_MAX_DEFAULT = 16 * 1024 * 1024
