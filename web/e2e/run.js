// `npm run e2e`: builds notifyd once, then runs the browser tests
// (web/e2e/*.test.js) with Node's test runner against it.
//
// Needs Go, PostgreSQL at TEST_DATABASE_URL (default
// postgres://postgres@127.0.0.1:5432/postgres), psql, and Chromium at
// /usr/bin/chromium (Debian's `chromium` package; CHROMIUM_PATH to use
// another). Screenshots and per-test logs go to test-artifacts/browser/.

import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { CHROMIUM, ROOT } from './harness.js';

const here = path.dirname(new URL(import.meta.url).pathname);

if (!existsSync(CHROMIUM)) {
  console.error(`e2e: no Chromium at ${CHROMIUM}. Install Debian's chromium (apt-get install chromium) or set CHROMIUM_PATH.`);
  process.exit(1);
}

const dir = mkdtempSync(path.join(tmpdir(), 'notifyd-e2e-'));
const bin = path.join(dir, 'notifyd');
const t0 = Date.now();
const build = spawnSync('go', ['build', '-o', bin, './cmd/notifyd'], {
  cwd: ROOT,
  stdio: 'inherit',
  env: { GOFLAGS: '-buildvcs=false', ...process.env },
});
if (build.status !== 0) {
  rmSync(dir, { recursive: true, force: true });
  console.error('e2e: go build ./cmd/notifyd failed');
  process.exit(1);
}
console.log(`e2e: built notifyd in ${((Date.now() - t0) / 1000).toFixed(1)} s`);

// Arguments: test files (default: every e2e/*.test.js) and options for
// node --test, such as --test-name-pattern=<regexp>.
const args = process.argv.slice(2);
const flags = args.filter((a) => a.startsWith('--'));
let files = args.filter((a) => !a.startsWith('--'));
if (files.length === 0) files = readdirSync(here).filter((f) => f.endsWith('.test.js')).sort().map((f) => path.join(here, f));
const run = spawnSync(process.execPath, ['--test', '--test-reporter=spec', ...flags, ...files], {
  stdio: 'inherit',
  env: { ...process.env, NOTIFYD_BIN: bin },
});
rmSync(dir, { recursive: true, force: true });
process.exit(run.status ?? 1);
