// Bundles the agent and the two programs it runs as the learner with esbuild (image/build-agent.sh calls it):
//   node image/bundle-agent.mjs <outdir> [metafile]
// Idle memory (issues 5 and 18): every byte of the bundle stays in the agent's memory as its source string, and
// everything an ESM module does at its top level runs at start, so what the agent never runs is left out or stubbed.
import { build } from 'esbuild';
import { writeFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const stub = (name) => resolve(repo, 'image/agent-stubs', name);
const [outdir, metafile] = process.argv.slice(2);
if (!outdir) throw new Error('usage: node image/bundle-agent.mjs <outdir> [metafile]');

// Whole packages the agent never loads, with everything only they import, stand in as a stub that throws when used:
// dockerode's ssh:// transport and BuildKit session (the agent talks to its daemon on a unix socket; ~6 MiB loaded),
// Fastify's own Ajv and fast-json-stringify compilers (it is given the zod ones, core/http/server.ts) and its
// inject() (light-my-request, for tests). Only the bare package name: fastify requires a file of fast-json-stringify
// directly for its error serializer, and that stays.
const unused = ['ssh2', '@grpc/grpc-js', '@grpc/proto-loader', 'protobufjs', 'uuid', '@fastify/ajv-compiler',
  '@fastify/fast-json-stringify-compiler', 'light-my-request'];
// An ESM import of node:http, node:crypto, node:util or node:buffer evaluates every lazy export (undici, http2,
// webcrypto, worker_threads): shims that require() them instead.
const shims = ['http', 'crypto', 'util', 'buffer'];
const alias = Object.fromEntries([
  ...unused.map((name) => [name, stub('unused.cjs')]),
  ...shims.map((mod) => [`node:${mod}`, stub(`node-${mod}.cjs`)]),
]);

/** zod imports all ~40 of its locales (a sixth of the bundle); the agent's messages are English only. */
const englishOnly = {
  name: 'zod-english-only',
  setup(on) {
    on.onResolve({ filter: /\/locales\/index\.js$/ }, (args) =>
      /[/\\]node_modules[/\\]zod[/\\]/.test(args.importer) ? { path: stub('zod-locales.js') } : undefined);
  },
};

// The deps are CommonJS inside an ESM bundle: give them require and __dirname.
const banner = "import { createRequire as __cr } from 'node:module'; import { fileURLToPath as __fu } from 'node:url';"
  + ' const require = __cr(import.meta.url); const __filename = __fu(import.meta.url);'
  + " const __dirname = __fu(new URL('.', import.meta.url));";

const result = await build({
  absWorkingDir: repo,
  entryPoints: ['agent/main.ts', 'agent/as-learner/tar-worker.ts', 'agent/archive/archive-worker.ts'],
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  logLevel: 'warning',
  legalComments: 'none',
  // Minified whitespace drops the comments whose non-Latin-1 characters made V8 hold the whole source as two-byte;
  // names stay as written, so stack traces stay readable.
  minifyWhitespace: true,
  minifySyntax: true,
  external: ['node-pty', 'cpu-features', '*.node'],
  alias,
  plugins: [englishOnly],
  banner: { js: banner },
  outdir,
  entryNames: '[name]',
  metafile: Boolean(metafile),
});
if (metafile) await writeFile(metafile, JSON.stringify(result.metafile));
