/**
 * A one-line progress bar on stderr, only when stderr is a terminal and the command is not in JSON
 * mode; otherwise it prints nothing at all.
 */
export class Progress {
  readonly #enabled: boolean
  readonly #label: string
  readonly #total: number
  readonly #started = Date.now()
  #done = 0
  #lastDraw = 0

  constructor (label: string, total: number, options: { json: boolean }) {
    this.#enabled = process.stderr.isTTY === true && !options.json && total > 0
    this.#label = label
    this.#total = total
  }

  add (bytes: number): void {
    this.#done += bytes
    if (!this.#enabled) return
    const now = Date.now()
    if (now - this.#lastDraw < 100 && this.#done < this.#total) return
    this.#lastDraw = now
    this.#draw()
  }

  finish (): void {
    if (!this.#enabled) return
    this.#draw()
    process.stderr.write('\n')
  }

  #draw (): void {
    const width = 30
    const ratio = Math.min(1, this.#done / this.#total)
    const filled = Math.round(ratio * width)
    const seconds = Math.max((Date.now() - this.#started) / 1000, 0.001)
    const rate = this.#done / seconds / 1048576
    process.stderr.write(`\r${this.#label} [${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ` +
      `${(ratio * 100).toFixed(0).padStart(3)}% ${formatBytes(this.#done)}/${formatBytes(this.#total)} ${rate.toFixed(1)} MiB/s`)
  }
}

export function formatBytes (n: number): string {
  if (n < 1024) return `${n} B`
  const units = ['KiB', 'MiB', 'GiB', 'TiB']
  let v = n / 1024
  let i = 0
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++ }
  return `${v.toFixed(1)} ${units[i]}`
}
