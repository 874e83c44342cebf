// Import boundaries between the parts of isthmus (see STYLE.md, "Layout"):
//  * a part imports another part only through that part's front door, its `index.ts`;
//  * imports go down the layers, never up (nothing below `cli/` imports `cli/`, nothing in the
//    product imports `test/` or `bench/`).
// Inside a part, files import each other freely. Tests may reach into a part's files (unit tests
// test internals), but never into `cli/`'s wiring from a part, and `bench/` and `testbed/` only
// through front doors.
import tseslint from 'typescript-eslint';
import importX from 'eslint-plugin-import-x';
import { createTypeScriptImportResolver } from 'eslint-import-resolver-typescript';

/** Each part and the parts it may import (through their index.ts). Order is bottom-up. */
const PARTS = {
  common: [],
  policy: [],
  protocol: ['common'],
  'native-bindings': ['common'],
  coordinator: ['common', 'policy', 'protocol'],
  relay: ['common', 'policy', 'protocol', 'native-bindings'],
  'node-agent': ['common', 'policy', 'protocol', 'native-bindings', 'coordinator'],
  mapper: ['common', 'policy', 'protocol', 'native-bindings', 'coordinator'],
  testbed: ['common', 'protocol'],
  cli: ['common', 'policy', 'protocol', 'native-bindings', 'coordinator', 'relay', 'node-agent', 'mapper', 'testbed'],
  bench: ['common', 'policy', 'protocol', 'native-bindings', 'coordinator', 'relay', 'node-agent', 'mapper', 'testbed'],
};
const ALL = Object.keys(PARTS);

/** Zones for import-x/no-restricted-paths: for every part, what it must not import. */
function zonesFor(part) {
  const allowed = PARTS[part];
  const zones = [];
  for (const other of ALL) {
    if (other === part) continue;
    if (allowed.includes(other)) {
      zones.push({
        target: `./${part}`, from: `./${other}`, except: ['./index.ts'],
        message: `import ${other}/ through its front door ('${other}' i.e. ${other}/index.ts), not a file inside it`,
      });
    } else {
      zones.push({
        target: `./${part}`, from: `./${other}`,
        message: `${part}/ may not depend on ${other}/ (allowed: ${allowed.join(', ') || 'nothing'})`,
      });
    }
  }
  zones.push({ target: `./${part}`, from: './test', message: 'the product never imports test/' });
  return zones;
}

export default [
  { ignores: ['node_modules/**', 'dist/**', 'native-bindings/build/**', 'bench/results/**', '**/*.js', '**/*.mjs'] },
  {
    files: ['**/*.ts'],
    languageOptions: { parser: tseslint.parser, parserOptions: { sourceType: 'module' } },
    // typescript-eslint is registered so that disable comments naming its rules resolve.
    plugins: { 'import-x': importX, '@typescript-eslint': tseslint.plugin },
    settings: {
      'import-x/resolver-next': [createTypeScriptImportResolver({ project: './tsconfig.json' })],
    },
    rules: {
      'import-x/no-restricted-paths': ['error', { zones: ALL.flatMap(zonesFor) }],
      'import-x/no-cycle': ['error', { ignoreExternal: true }],
    },
  },
  {
    // protocol/ and policy/ are pure: wire formats, the handshake, timers, policy evaluation.
    // No sockets, files, processes or Redis (crypto primitives are fine).
    files: ['protocol/**/*.ts', 'policy/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        paths: ['dgram', 'net', 'fs', 'fs/promises', 'child_process', 'http', 'https', 'ioredis', 'fastify'].flatMap((m) => [m, `node:${m}`])
          .map((name) => ({ name, message: 'protocol/ and policy/ are pure: I/O belongs to the parts above them' })),
      }],
    },
  },
  {
    // The repository's own front door (the library surface) re-exports parts' front doors.
    files: ['index.ts'],
    rules: {
      'import-x/no-restricted-paths': ['error', {
        zones: ALL.map((p) => ({ target: './index.ts', from: `./${p}`, except: ['./index.ts'], message: `re-export ${p}/ through ${p}/index.ts` })),
      }],
    },
  },
  {
    // Tests: deep imports into parts are fine (unit tests test internals); the testbed and the
    // bench are used through their front doors, like any other consumer would.
    files: ['test/**/*.ts'],
    rules: {
      'import-x/no-restricted-paths': ['error', {
        zones: [
          { target: './test', from: './testbed', except: ['./index.ts'], message: 'use testbed/ through testbed/index.ts' },
          { target: './test', from: './bench', message: 'tests do not import bench/: what both need lives in testbed/' },
        ],
      }],
    },
  },
];
