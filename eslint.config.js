// @ts-check
// Lint: eslint's recommended rules plus typescript-eslint's recommended type-checked rules, run by
// `npm run lint` (and so by `npm test`). The exceptions below are the only departures; each says why.
import eslint from '@eslint/js'
import { defineConfig } from 'eslint/config'
import tseslint from 'typescript-eslint'

export default defineConfig(
  { ignores: ['**/dist/', '**/node_modules/', 'oclif.manifest.json'] },
  // a disable comment that no longer suppresses anything fails the lint, so none outlives its reason
  { linterOptions: { reportUnusedDisableDirectives: 'error' } },
  eslint.configs.recommended,
  tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: {
        // One program over sources, tests and scripts, resolved through the `dfs-source` condition
        // as the tests run them: no build needed, and scripts/ (in no build tsconfig) is covered.
        project: './tsconfig.eslint.json',
        tsconfigRootDir: import.meta.dirname
      }
    },
    rules: {
      // Methods that implement a Promise-returning contract (ExtentStore, connection gaters, RPC
      // handlers, oclif hooks, start/stop, uvu test bodies) are `async` without awaiting so that a
      // throw becomes a rejection; dropping `async` to satisfy the rule would change that.
      '@typescript-eslint/require-await': 'off',
      // `_` names a value left unused on purpose (`for await (const _ of body)`, `const { a: _, ...rest } = x`).
      '@typescript-eslint/no-unused-vars': ['error', { varsIgnorePattern: '^_', argsIgnorePattern: '^_', ignoreRestSiblings: true }],
      // Passing on a caught value as it is (`catch (err) { reject(err) }`) is not inventing a non-Error
      // rejection; the rule still refuses rejecting with a literal or an object that is not an Error.
      '@typescript-eslint/prefer-promise-reject-errors': ['error', { allowThrowingUnknown: true }],
      // An empty catch is this codebase's (and standard's) idiom for a failure that does not matter.
      'no-empty': ['error', { allowEmptyCatch: true }]
    }
  },
  {
    // Tests read parsed JSON of CLI and RPC output, caught errors and hand-made stubs (loggers,
    // monkey-patched services) as `any`, on purpose: a wrong shape fails the assertion anyway.
    // The shared conformance suites (src/api/testing/*-suite.ts) are tests too. Tests also save a
    // method to put it back after monkey-patching it (unbound-method).
    files: ['test/**/*.ts', 'plugins/*/test/**/*.ts', 'src/api/testing/*-suite.ts'],
    rules: {
      '@typescript-eslint/unbound-method': 'off',
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-return': 'off'
    }
  },
  {
    // Plain Node scripts (bin/*.js, scripts/*.mjs): no type information.
    files: ['**/*.js', '**/*.mjs'],
    extends: [tseslint.configs.disableTypeChecked],
    languageOptions: { globals: { process: 'readonly', console: 'readonly' } }
  }
)
