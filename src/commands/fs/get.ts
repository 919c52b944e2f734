import { Args, Flags } from '@oclif/core'
import { basename } from 'node:path'
import type { Consistency } from '@dfs/api'
import { ClientCommand, consistencyFlag } from '../../cli/base-command.js'
import { Progress, formatBytes } from '../../cli/progress.js'
import { getFile } from '../../client/files.js'

interface GetResult { path: string, size: number, local: string, consistency: Consistency }

export default class FsGet extends ClientCommand<GetResult> {
  static override summary = 'Read a file from dfs into a local file, a directory, or stdout (-)'
  static override args = {
    remote: Args.string({ required: true, description: 'dfs path to read' }),
    local: Args.string({ required: false, description: 'local file or directory to write, or - for stdout (default: the file name in the current directory)' })
  }

  static override flags = {
    consistency: consistencyFlag,
    tenant: Flags.string({ description: 'act in this tenant\'s namespace (cluster-wide admins; others act in their own)' })
  }

  async run (): Promise<GetResult> {
    const { args, flags } = await this.parse(FsGet)
    const client = await this.client(flags)
    const toStdout = args.local === '-'
    if (toStdout && this.jsonEnabled()) {
      this.error('--json and - cannot be combined: stdout carries the file', { exit: 2 })
    }
    let progress: Progress | undefined
    const r = await getFile(client, args.remote, toStdout ? process.stdout : (args.local ?? basename(args.remote)),
      (size) => { progress = new Progress('get', size, { json: this.jsonEnabled() || toStdout }) },
      (n) => { progress?.add(n) }, { consistency: flags.consistency, tenant: flags.tenant })
    progress?.finish()
    const consistency = this.served(r.consistency)
    if (!toStdout) this.say(`${r.path} -> ${r.local}  ${formatBytes(r.size)}`)
    return { path: r.path, size: r.size, local: r.local, consistency }
  }
}
