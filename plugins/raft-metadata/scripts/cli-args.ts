/** Command-line helpers of the simulation scripts: a usage error exits 2 after printing the usage. */

/** Prints `message` and `usage` on stderr and exits 2. */
export function usageError (message: string, usage: string): never {
  process.stderr.write(`${message}\n${usage}\n`)
  process.exit(2)
}

/** The value of `--name` as a non-negative integer (`dflt` when absent), else a usage error. */
export function intArg (v: string | undefined, name: string, dflt: number, usage: string): number {
  if (v === undefined) return dflt
  const n = Number(v)
  if (!Number.isInteger(n) || n < 0) usageError(`--${name} must be a non-negative integer, got ${v}`, usage)
  return n
}
