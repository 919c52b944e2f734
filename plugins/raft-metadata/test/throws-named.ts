import * as assert from 'uvu/assert'

/** Runs `fn` and asserts it throws an error whose `.name` is `name`. */
export function throwsNamed (fn: () => unknown, name: string): void {
  try {
    fn()
  } catch (err) {
    assert.is((err as Error).name, name)
    return
  }
  assert.unreachable(`expected ${name}`)
}
