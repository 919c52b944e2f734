import * as Args from '@oclif/core/args'
import * as Flags from '@oclif/core/flags'
import type { TenantParams, TenantRecord } from '@dfs/api'
import { ClientCommand } from '../../cli/base-command.js'

/** A limit as typed: a non-negative integer, or `none` for no limit. */
const limit = Flags.custom<number | null>({
  parse: async (input) => {
    if (input === 'none') return null
    if (!/^\d+$/.test(input) || !Number.isSafeInteger(Number(input))) throw new Error(`${input} is not a non-negative integer or none`)
    return Number(input)
  }
})

/** The limits `tenant create` and `tenant set` take. */
export const limitFlags = {
  'quota-bytes': limit({ description: 'most bytes (sum of file sizes) the tenant may hold, or none' }),
  'quota-files': limit({ description: 'most files the tenant may hold, or none' }),
  'request-rate': limit({ description: 'requests per second each of its users may make on one node, or none for the cluster\'s user-request-rate' })
}

/** The limits given on the command line (those left out are left out). */
export function limitsOf (flags: { 'quota-bytes'?: number | null, 'quota-files'?: number | null, 'request-rate'?: number | null }): Omit<TenantParams, 'name'> {
  return {
    ...(flags['quota-bytes'] !== undefined ? { quotaBytes: flags['quota-bytes'] } : {}),
    ...(flags['quota-files'] !== undefined ? { quotaFiles: flags['quota-files'] } : {}),
    ...(flags['request-rate'] !== undefined ? { requestRate: flags['request-rate'] } : {})
  }
}

export function describeTenant (t: TenantRecord): string {
  const show = (v: number | null): string => v === null ? 'none' : String(v)
  return `${t.name}  quota ${show(t.quotaBytes)} bytes, ${show(t.quotaFiles)} files; request rate ${show(t.requestRate)}/s`
}

export default class TenantCreate extends ClientCommand<TenantRecord> {
  static override summary = 'Create a tenant: a namespace of its own, with optional quotas and request rate (cluster-wide Admin)'
  static override args = {
    name: Args.string({ required: true, description: 'lower-case letters, digits and dashes' })
  }

  static override flags = limitFlags

  async run (): Promise<TenantRecord> {
    const { args, flags } = await this.parse(TenantCreate)
    const client = await this.client(flags)
    const r = await client.call('tenant.create', { name: args.name, ...limitsOf(flags) })
    this.say(describeTenant(r))
    return { name: r.name, quotaBytes: r.quotaBytes, quotaFiles: r.quotaFiles, requestRate: r.requestRate }
  }
}
