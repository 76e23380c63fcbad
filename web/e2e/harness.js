// The browser tests' harness: a notifyd process on a fresh database, a
// Chromium driven by playwright-core, and the development issuer's sign-in.
//
// Each test gets its own database (created on the PostgreSQL of
// TEST_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/postgres, and
// dropped afterwards), its own notifyd (NOTIFY_DEV_AUTH=1 on a free loopback
// port, heartbeat 1 s) and its own browser context. `npm run e2e` (run.js)
// builds notifyd once and passes it as NOTIFYD_BIN; without it the harness
// builds it itself.

import { spawn, execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { after, before } from 'node:test';
import { chromium } from 'playwright-core';

const execFileP = promisify(execFile);

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const ARTIFACTS = path.join(ROOT, 'test-artifacts', 'browser');
export const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
/** NOTES.md, Machines: the flags Debian's Chromium needs here. */
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const SERVER_URL = process.env.TEST_DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/postgres';

// ---- waiting ------------------------------------------------------------------

/**
 * Polls fn until it returns a truthy value (returned) or the deadline passes.
 * An error thrown by fn is retried, unless it has `fatal: true`.
 * @template T
 * @param {() => T | Promise<T>} fn
 * @param {{timeout?: number, interval?: number, what?: string}} [opts]
 * @returns {Promise<T>}
 */
export async function waitFor(fn, { timeout = 10000, interval = 50, what = 'condition' } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
      last = v;
    } catch (e) {
      if (e && /** @type {any} */ (e).fatal) throw e;
      last = e;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeout} ms waiting for ${what} (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
    }
    await new Promise((r) => setTimeout(r, interval));
  }
}

// ---- notifyd --------------------------------------------------------------------

let built = null;
/** The notifyd binary: NOTIFYD_BIN, or built once per process. */
export async function notifydBinary() {
  if (process.env.NOTIFYD_BIN) return process.env.NOTIFYD_BIN;
  if (!built) {
    built = (async () => {
      const out = path.join(mkdtempSync(path.join(tmpdir(), 'notifyd-e2e-')), 'notifyd');
      await execFileP('go', ['build', '-o', out, './cmd/notifyd'], { cwd: ROOT, env: { GOFLAGS: '-buildvcs=false', ...process.env } });
      return out;
    })();
  }
  return built;
}

/** A free TCP port on 127.0.0.1. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = /** @type {import('node:net').AddressInfo} */ (s.address());
      s.close(() => resolve(port));
    });
  });
}

/** A notifyd process that can be stopped and started again on the same port and database. */
export class Notifyd {
  /**
   * @param {{databaseUrl: string, port: number, env?: Record<string, string>, log: (line: string) => void}} opts
   */
  constructor({ databaseUrl, port, env = {}, log }) {
    this.databaseUrl = databaseUrl;
    this.port = port;
    this.url = `http://127.0.0.1:${port}`;
    this.env = env;
    this.log = log;
    /** @type {import('node:child_process').ChildProcess | null} */
    this.proc = null;
    this.exited = null;
  }

  async start() {
    const bin = await notifydBinary();
    const proc = spawn(bin, ['serve'], {
      env: {
        PATH: process.env.PATH ?? '',
        HOME: process.env.HOME ?? '',
        DATABASE_URL: this.databaseUrl,
        NOTIFY_DEV_AUTH: '1',
        NOTIFY_ADDR: `127.0.0.1:${this.port}`,
        NOTIFY_HEARTBEAT_INTERVAL: '1s',
        ...this.env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.proc = proc;
    this.exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
    const tag = `[notifyd:${this.port} pid ${proc.pid}] `;
    for (const stream of [proc.stdout, proc.stderr]) {
      let buf = '';
      stream?.setEncoding('utf8');
      stream?.on('data', (chunk) => {
        buf += chunk;
        let i;
        while ((i = buf.indexOf('\n')) >= 0) {
          this.log(tag + buf.slice(0, i));
          buf = buf.slice(i + 1);
        }
      });
    }
    let gone = false;
    void this.exited.then(() => (gone = true));
    await waitFor(
      async () => {
        if (gone) throw Object.assign(new Error('notifyd exited during start (see its log)'), { fatal: true });
        const res = await fetch(this.url + '/readyz');
        return res.status === 200;
      },
      { timeout: 20000, interval: 50, what: `notifyd ready at ${this.url}` },
    );
  }

  /**
   * Stops the process (SIGTERM: a graceful shutdown) and waits for it.
   * @param {NodeJS.Signals} [signal]
   */
  async stop(signal = 'SIGTERM') {
    const proc = this.proc;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    proc.kill(signal);
    const timer = setTimeout(() => proc.kill('SIGKILL'), 10000);
    await this.exited;
    clearTimeout(timer);
    this.proc = null;
  }
}

// ---- PostgreSQL -------------------------------------------------------------------

/**
 * The connection URL of database `name` on the test server.
 * @param {string} name
 */
function databaseUrl(name) {
  const u = new URL(SERVER_URL);
  u.pathname = '/' + name;
  if (!u.searchParams.has('sslmode')) u.searchParams.set('sslmode', 'disable');
  return u.toString();
}

/**
 * Runs SQL through psql and returns its unaligned, tuples-only output.
 * @param {string} url
 * @param {string} sql
 */
export async function psql(url, sql) {
  const { stdout } = await execFileP('psql', [url, '-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-c', sql], {
    env: { ...process.env, PGCONNECT_TIMEOUT: '10' },
  });
  return stdout;
}

/** A SQL string literal. @param {string} s */
export function literal(s) {
  return "'" + String(s).replace(/'/g, "''") + "'";
}

/**
 * @typedef {{message: string, severity?: string, module?: string, actionType?: string, details?: string,
 *   targetUserId?: string, targetRoles?: string[]}} NewNotification
 */

/**
 * Inserts notifications in one statement (so one transaction, in this
 * order), the way an internal app does, and returns their ids.
 * @param {string} url
 * @param {NewNotification[]} rows
 */
export async function insertNotifications(url, rows) {
  const opt = (/** @type {string | undefined} */ v) => (v === undefined ? 'NULL' : literal(v));
  const values = rows.map((r) =>
    [
      literal(r.message),
      literal(r.severity ?? 'medium'),
      opt(r.module),
      opt(r.actionType),
      opt(r.details),
      opt(r.targetUserId),
      r.targetRoles ? `ARRAY[${r.targetRoles.map(literal).join(', ')}]::text[]` : 'NULL',
    ].join(', '),
  );
  const out = await psql(
    url,
    `INSERT INTO notify.notifications (message, severity, module, action_type, details, target_user_id, target_roles)
     VALUES (${values.join('), (')}) RETURNING id`,
  );
  return out.trim().split('\n').filter(Boolean);
}

/**
 * A token from notifyd's development issuer (`notifyd dev-token`), accepted
 * as `Authorization: Bearer` by that server (same database, same address).
 * @param {Notifyd} server
 * @param {string} sub
 * @param {string[]} [roles]
 */
export async function devToken(server, sub, roles = []) {
  const args = ['dev-token', '--sub', sub];
  if (roles.length) args.push('--roles', roles.join(','));
  const { stdout } = await execFileP(await notifydBinary(), args, {
    env: {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '',
      DATABASE_URL: server.databaseUrl,
      NOTIFY_ADDR: `127.0.0.1:${server.port}`,
    },
  });
  return stdout.trim();
}

/**
 * A fresh database and a notifyd on it (not started yet), dropped and
 * stopped after the test, with the test's log written to
 * test-artifacts/browser/logs/. closeFirst runs first in the teardown (the
 * browser context, so no page reconnects to a stopping server).
 * @param {import('node:test').TestContext} t
 * @param {Record<string, string>} env
 * @param {() => Promise<unknown>} [closeFirst]
 */
async function serverForTest(t, env, closeFirst = async () => {}) {
  const started = Date.now();
  const lines = [];
  const log = (/** @type {string} */ line) => lines.push(`${((Date.now() - started) / 1000).toFixed(3)} ${line}`);
  const name = 'notifyd_e2e_' + randomBytes(6).toString('hex');
  await psql(databaseUrl('postgres'), `CREATE DATABASE ${name}`);
  const dbUrl = databaseUrl(name);
  const server = new Notifyd({ databaseUrl: dbUrl, port: await freePort(), env, log });
  t.after(async () => {
    await closeFirst().catch(() => {});
    await server.stop().catch(() => {});
    await psql(databaseUrl('postgres'), `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch((e) => log('drop database: ' + e.message));
    mkdirSync(path.join(ARTIFACTS, 'logs'), { recursive: true });
    writeFileSync(path.join(ARTIFACTS, 'logs', slug(t.name) + '.log'), lines.join('\n') + '\n');
  });
  return { server, dbUrl, log };
}

/**
 * A database and notifyd on it, without a browser, for tests of other
 * clients of the stream. Torn down after the test; the server's log goes to
 * test-artifacts/browser/logs/ like setup's.
 * @param {import('node:test').TestContext} t
 * @param {{env?: Record<string, string>}} [opts]
 */
export async function setupServer(t, { env = {} } = {}) {
  const { server, dbUrl, log } = await serverForTest(t, env);
  await server.start();
  return {
    server,
    dbUrl,
    log,
    /** @param {NewNotification[]} rows */
    insert: (rows) => insertNotifications(dbUrl, rows),
    /** @param {string} sql */
    sql: (sql) => psql(dbUrl, sql),
    /** @param {string} sub @param {string[]} [roles] */
    token: (sub, roles) => devToken(server, sub, roles),
  };
}

// ---- the browser ------------------------------------------------------------------

/**
 * One Chromium for the test file: launched before its tests, closed after
 * them. Returns the getter of the browser (there is none before `before`).
 * @returns {() => import('playwright-core').Browser}
 */
export function useBrowser() {
  /** @type {import('playwright-core').Browser | undefined} */
  let browser;
  before(async () => {
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
  });
  return () => {
    if (!browser) throw new Error('useBrowser: the browser is launched in before()');
    return browser;
  };
}

export async function launchBrowser() {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`no Chromium at ${CHROMIUM}: apt-get install chromium (or set CHROMIUM_PATH)`);
  }
  return chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true });
}

/**
 * Everything one test needs: a database, notifyd on it, a browser context
 * whose pages are watched for console errors. Torn down after the test.
 * @param {import('node:test').TestContext} t
 * @param {import('playwright-core').Browser} browser
 * @param {{env?: Record<string, string>, viewport?: {width: number, height: number}}} [opts]
 */
export async function setup(t, browser, { env = {}, viewport = { width: 1280, height: 800 } } = {}) {
  /** @type {import('playwright-core').BrowserContext | undefined} */
  let context;
  const { server, dbUrl, log } = await serverForTest(t, env, async () => context?.close());
  context = await browser.newContext({ viewport, locale: 'en-GB', timezoneId: 'UTC' });
  /** @type {{at: number, page: string, type: string, text: string}[]} */
  const consoleErrors = [];
  let pageNo = 0;
  const watch = (/** @type {import('playwright-core').Page} */ page) => {
    const label = 'page' + ++pageNo;
    page.on('console', (m) => {
      log(`[${label} console.${m.type()}] ${m.text()}`);
      if (m.type() === 'error' || m.type() === 'assert') consoleErrors.push({ at: Date.now(), page: label, type: m.type(), text: m.text() });
    });
    page.on('pageerror', (e) => {
      log(`[${label} pageerror] ${e.stack || e.message}`);
      consoleErrors.push({ at: Date.now(), page: label, type: 'pageerror', text: e.message });
    });
    page.on('dialog', (d) => {
      log(`[${label} dialog] ${d.type()} ${d.message()}`);
      consoleErrors.push({ at: Date.now(), page: label, type: 'dialog', text: d.message() });
      void d.dismiss();
    });
  };
  context.on('page', watch);

  await server.start();

  /** Outages the test causes on purpose: console errors of failed requests to the server then are expected. */
  const outages = [];
  /** @type {RegExp[]} */
  const allowed = [];
  return {
    server,
    context,
    dbUrl,
    log,
    /** @param {NewNotification[]} rows */
    insert: (rows) => insertNotifications(dbUrl, rows),
    /** @param {string} sql */
    sql: (sql) => psql(dbUrl, sql),
    async newPage() {
      return context.newPage();
    },
    /** Stops notifyd, noting the outage. */
    async stopServer() {
      outages.push({ from: Date.now(), to: Infinity });
      await server.stop();
    },
    async startServer() {
      await server.start();
      outages[outages.length - 1].to = Date.now() + 3000; // requests already failing may report a little later
    },
    /**
     * The `status` action's answer, asked with this context's session cookie.
     * @returns {Promise<any>}
     */
    async status() {
      const res = await context.request.post(server.url + '/api/notifications/ws', {
        data: { action: 'status' },
        headers: { Origin: server.url },
      });
      if (!res.ok()) throw new Error(`status: ${res.status()} ${await res.text()}`);
      return res.json();
    },
    /**
     * Console errors, page errors and dialogs so far, except failed requests
     * to the server while it was down on purpose and messages allowed with
     * allowConsole.
     */
    consoleErrors() {
      return consoleErrors.filter(
        (e) =>
          !allowed.some((re) => re.test(e.text)) &&
          !(
            outages.some((o) => e.at >= o.from && e.at <= o.to) &&
            /net::ERR_CONNECTION_REFUSED|Failed to load resource|ERR_EMPTY_RESPONSE|ERR_CONNECTION_RESET/.test(e.text)
          ),
      );
    },
    /**
     * Expects console errors matching re (the browser logs every 4xx answer
     * to fetch: a test that provokes one on purpose allows it); returns a
     * function counting them.
     * @param {RegExp} re
     */
    allowConsole(re) {
      allowed.push(re);
      return () => consoleErrors.filter((e) => re.test(e.text)).length;
    },
  };
}

/** @param {string} s */
function slug(s) {
  return s.replace(/[^a-z0-9]+/gi, '-').replace(/^-|-$/g, '').slice(0, 80).toLowerCase();
}

// ---- the page -----------------------------------------------------------------------

/**
 * Opens /test-notifications, which sends the browser through /auth/login to
 * the development issuer's form; signs in there as user with roles, and
 * waits for the page's stream to be open.
 * @param {import('playwright-core').Page} page
 * @param {string} base
 * @param {{user?: string, roles?: string[], query?: string}} [opts]
 */
export async function signIn(page, base, { user = 'alice', roles = ['ADMIN'], query = '' } = {}) {
  const target = base + '/test-notifications' + query;
  await page.goto(target);
  await page.waitForURL((u) => u.pathname.startsWith('/dev-issuer/'));
  await page.fill('#user_id', user);
  const suggested = [];
  for (const box of await page.locator('input[name=role]').all()) {
    const value = (await box.getAttribute('value')) ?? '';
    suggested.push(value);
    await box.setChecked(roles.includes(value));
  }
  await page.fill('#roles', roles.filter((r) => !suggested.includes(r)).join(', '));
  await Promise.all([page.waitForURL(target), page.click('button[type=submit]')]);
  await waitOpen(page);
}

/**
 * Waits until this tab's client says the stream is open.
 * @param {import('playwright-core').Page} page
 * @param {number} [timeout]
 */
export async function waitOpen(page, timeout = 15000) {
  await page.waitForSelector('#conn-state[data-state="open"]', { timeout });
}

/**
 * The notifications the page shows, top to bottom.
 * @param {import('playwright-core').Page} page
 * @returns {Promise<{id: string, seq: number, message: string, severity: string, time: string, datetime: string, module: string}[]>}
 */
export function shown(page) {
  return page.$$eval('#notifications > li', (lis) =>
    lis.map((li) => ({
      id: li.getAttribute('data-id') ?? '',
      seq: Number(li.getAttribute('data-seq')),
      message: li.querySelector('.message')?.textContent ?? '',
      severity: li.querySelector('.badge')?.textContent ?? '',
      time: li.querySelector('time')?.textContent ?? '',
      datetime: li.querySelector('time')?.getAttribute('datetime') ?? '',
      module: li.querySelector('.module')?.textContent ?? '',
    })),
  );
}

/**
 * Waits until the page shows at least n notifications and returns them.
 * @param {import('playwright-core').Page} page
 * @param {number} n
 * @param {number} [timeout]
 */
export async function waitShown(page, n, timeout = 15000) {
  await page.waitForFunction((n) => document.querySelectorAll('#notifications > li').length >= n, n, {
    timeout,
    polling: 50,
  });
  return shown(page);
}

/**
 * Checks the page shows exactly these messages, each once, newest first
 * (seq strictly decreasing).
 * @param {import('node:assert').strict} assert
 * @param {Awaited<ReturnType<typeof shown>>} items
 * @param {string[]} messagesOldestFirst
 */
export function assertExactlyOnceInOrder(assert, items, messagesOldestFirst) {
  const messages = items.map((i) => i.message);
  assert.deepEqual(messages, [...messagesOldestFirst].reverse(), 'every notification once, newest first');
  assert.equal(new Set(items.map((i) => i.id)).size, items.length, 'no notification id twice');
  for (let i = 1; i < items.length; i++) {
    assert.ok(items[i - 1].seq > items[i].seq, `seq strictly decreasing down the list: ${items[i - 1].seq} then ${items[i].seq}`);
  }
}

/**
 * Saves a screenshot (of the full page unless told otherwise, or of an
 * element) under test-artifacts/browser/.
 * @param {import('playwright-core').Page | import('playwright-core').Locator} target
 * @param {string} name
 * @param {{fullPage?: boolean}} [opts]
 */
export async function screenshot(target, name, { fullPage = true } = {}) {
  mkdirSync(ARTIFACTS, { recursive: true });
  const file = path.join(ARTIFACTS, name + '.png');
  if ('goto' in target) await target.screenshot({ path: file, fullPage });
  else await target.screenshot({ path: file });
  return file;
}
