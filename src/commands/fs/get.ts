import * as Args from '@oclif/core/args'
import * as Flags from '@oclif/core/flags'
import { basename } from 'node:path'
import { InvalidArgumentError, type Consistency } from '@dfs/api'
import { ClientCommand, consistencyFlag } from '../../cli/base-command.js'
import { tuneHeapForStreaming } from '../../cli/heap.js'
import { Progress, formatBytes } from '../../cli/progress.js'
import { getFile } from '../../client/files.js'

interface GetResult { path: string, size: number, offset: number, length: number, local: string, consistency: Consistency }

export default class FsGet extends ClientCommand<GetResult> {
  static override summary = 'Read a file from dfs, or a range of it, into a local file, a directory, or stdout (-)'
  static override description = `With --offset and/or --length only the bytes [offset, offset + length) are read, and the node reads
only the extents that hold them. A range that runs past the end of the file is clipped; one that starts
at the end (or has --length 0) is empty; one that starts past the end is InvalidRange.`

  static override args = {
    remote: Args.string({ required: true, description: 'dfs path to read' }),
    local: Args.string({ required: false, description: 'local file or directory to write, or - for stdout (default: the file name in the current directory)' })
  }

  static override flags = {
    consistency: consistencyFlag,
    tenant: Flags.string({ description: 'act in this tenant\'s namespace (cluster-wide admins; others act in their own)' }),
    // strings, so that a bad number is the typed InvalidArgument of the command contract, not a usage error
    offset: Flags.string({ description: 'first byte to read (default 0)' }),
    length: Flags.string({ description: 'most bytes to read (default: to the end of the file)' })
  }

  async run (): Promise<GetResult> {
    const { args, flags } = await this.parse(FsGet)
    tuneHeapForStreaming()
    const offset = byteCount('offset', flags.offset)
    const length = byteCount('length', flags.length)
    const toStdout = args.local === '-'
    if (toStdout && this.jsonEnabled()) {
      this.error('--json and - cannot be combined: stdout carries the file', { exit: 2 })
    }
    const client = await this.client(flags)
    let progress: Progress | undefined
    const r = await getFile(client, args.remote, toStdout ? process.stdout : (args.local ?? basename(args.remote)),
      (n) => { progress = new Progress('get', n, { json: this.jsonEnabled() || toStdout }) },
      (n) => { progress?.add(n) },
      { consistency: flags.consistency, tenant: flags.tenant, ...(offset !== undefined ? { offset } : {}), ...(length !== undefined ? { length } : {}) })
    progress?.finish()
    const consistency = this.served(r.consistency)
    const ranged = offset !== undefined || length !== undefined
    if (!toStdout) {
      this.say(ranged
        ? `${r.path} [${r.offset}, ${r.offset + r.length}) -> ${r.local}  ${formatBytes(r.length)} of ${formatBytes(r.size)}`
        : `${r.path} -> ${r.local}  ${formatBytes(r.size)}`)
    }
    return { path: r.path, size: r.size, offset: r.offset, length: r.length, local: r.local, consistency }
  }
}

/** A byte offset or count given on the command line: a decimal integer >= 0, else InvalidArgument. */
function byteCount (flag: string, raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined
  const n = /^[0-9]+$/.test(raw) ? Number(raw) : NaN
  if (!Number.isSafeInteger(n)) throw new InvalidArgumentError(`--${flag} must be an integer >= 0, not ${raw.slice(0, 32)}`, { [flag]: raw.slice(0, 32) })
  return n
}
