// <notify-inbox> in a real browser against a real notifyd (issue 17): on a
// plain HTML page and in a React page (React's UMD builds, no build step),
// the badge across two tabs, seen on open, read and mark all read, archive,
// snooze coming back, a notification replaced by its collapseKey, expiry,
// action clicks, toasts, keyboard navigation, an axe-core check (no serious
// or critical violations) and screenshots (desktop, phone, dark theme).
//
// The test pages are served by the browser context itself (context.route on
// the server's origin), so they share the session cookie of the sign-in.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';

import { literal, screenshot, setup, signIn, useBrowser, waitFor, waitOpen } from './harness.js';

const browser = useBrowser();
const WEB = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** Files of node_modules the test pages load. */
const VENDOR = {
  'react.js': 'node_modules/react/umd/react.production.min.js',
  'react-dom.js': 'node_modules/react-dom/umd/react-dom.production.min.js',
  'axe.js': 'node_modules/axe-core/axe.min.js',
};

/**
 * A plain page with the element in its header.
 * @param {URLSearchParams} q theme=dark sets the attribute
 */
function plainPage(q) {
  const theme = q.get('theme') ? ` theme="${q.get('theme')}"` : '';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Acme · inbox</title>
<style>
  body { margin: 0; font: 15px/1.5 system-ui, sans-serif; background: #f8fafc; color: #0f172a; }
  header { display: flex; align-items: center; justify-content: space-between; padding: 8px 16px; background: #fff; border-bottom: 1px solid #e2e8f0; }
  header h1 { font-size: 18px; margin: 0; }
  main { padding: 24px 16px; max-width: 720px; }
  @media (prefers-color-scheme: dark) { body { background: #0f172a; color: #e2e8f0; } header { background: #111827; border-color: #334155; } }
  ${q.get('theme') === 'dark' ? 'body { background: #0f172a; color: #e2e8f0; } header { background: #111827; border-color: #334155; }' : ''}
</style>
<script type="module" src="/static/notify-inbox.js"></script>
</head><body>
<header><h1>Acme</h1><notify-inbox${theme}></notify-inbox></header>
<main><h2>Orders</h2><p>The bell in the header is the inbox.</p></main>
</body></html>`;
}

/** A React 18 page (StrictMode) with <NotifyInbox>, recording its callbacks in window.inboxEvents. */
function reactPage() {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Acme · React</title>
<script src="/e2e/vendor/react.js"></script>
<script src="/e2e/vendor/react-dom.js"></script>
</head><body>
<div id="root"></div>
<script type="module">
  import { NotifyInbox } from '/static/notify-inbox-react.js';
  const h = React.createElement;
  const events = (window.inboxEvents = []);
  function App() {
    const [unread, setUnread] = React.useState(null);
    return h('header', { style: { display: 'flex', justifyContent: 'space-between', padding: '8px 16px' } },
      h('h1', { style: { fontSize: '18px', margin: 0 } }, 'Acme (React)'),
      h('output', { id: 'unread' }, unread === null ? '' : String(unread)),
      h(NotifyInbox, {
        theme: 'light',
        onUnreadChange: (d) => setUnread(d.count),
        onOpen: () => events.push(['open']),
        onClose: () => events.push(['close']),
        onNotification: (d) => events.push(['notification', d.message.data.message]),
        onAction: (d, ev) => { ev.preventDefault(); events.push(['action', d.action.id, d.notification.message]); },
      }));
  }
  ReactDOM.createRoot(document.getElementById('root')).render(h(React.StrictMode, null, h(App)));
</script>
</body></html>`;
}

/**
 * Serves the test pages and vendor files under /e2e/ on the server's origin.
 * @param {Awaited<ReturnType<typeof setup>>} env
 */
async function serveTestPages(env) {
  await env.context.route(env.server.url + '/e2e/**', (route) => {
    const u = new URL(route.request().url());
    const name = u.pathname.slice('/e2e/'.length);
    if (name === 'inbox.html') return route.fulfill({ contentType: 'text/html', body: plainPage(u.searchParams) });
    if (name === 'react.html') return route.fulfill({ contentType: 'text/html', body: reactPage() });
    const file = VENDOR[/** @type {keyof typeof VENDOR} */ (name.replace('vendor/', ''))];
    if (file) return route.fulfill({ contentType: 'text/javascript', body: readFileSync(path.join(WEB, file)) });
    return route.fulfill({ status: 404, body: 'not found' });
  });
}

/**
 * Signs in (as alice, role USER) and opens the test page; waits for the
 * element to know the unread count.
 * @param {Awaited<ReturnType<typeof setup>>} env
 * @param {string} [page] path of the test page
 */
async function openPage(env, page = '/e2e/inbox.html') {
  await serveTestPages(env);
  const p = await env.newPage();
  await signIn(p, env.server.url, { user: 'alice', roles: ['USER'] });
  await p.goto(env.server.url + page);
  await waitCount(p);
  return p;
}

/**
 * A second tab of the same browser on the same page.
 * @param {Awaited<ReturnType<typeof setup>>} env
 * @param {string} [page]
 */
async function anotherTab(env, page = '/e2e/inbox.html') {
  const p = await env.newPage();
  await p.goto(env.server.url + page);
  await waitCount(p);
  return p;
}

/** Waits until the element's unread count is known (a number). @param {import('playwright-core').Page} page */
async function waitCount(page) {
  await page.waitForFunction(() => /^\d+$/.test(document.querySelector('notify-inbox')?.getAttribute('data-unread') ?? ''), null, { polling: 50, timeout: 15000 });
}

/**
 * Waits until the element's attribute has this value.
 * @param {import('playwright-core').Page} page
 * @param {'data-unread' | 'data-unseen'} attr
 * @param {string} value
 */
async function waitAttr(page, attr, value, timeout = 5000) {
  try {
    await page.waitForFunction(([a, v]) => document.querySelector('notify-inbox')?.getAttribute(a) === v, [attr, value], { polling: 25, timeout });
  } catch (e) {
    const now = await page.getAttribute('notify-inbox', attr);
    throw new Error(`${attr} never became ${value} (is ${now})`, { cause: e });
  }
}

/**
 * The list the popover shows: id, message, read, seen.
 * @param {import('playwright-core').Page} page
 */
function items(page) {
  return page.$$eval('notify-inbox >> css=li.item', (lis) =>
    lis.map((li) => ({
      id: li.getAttribute('data-id') ?? '',
      message: li.querySelector('.message')?.textContent ?? '',
      read: li.getAttribute('data-read') === 'true',
    })),
  );
}

/**
 * Waits until the list shows exactly these messages (top to bottom).
 * @param {import('playwright-core').Page} page
 * @param {string[]} messages
 */
async function waitItems(page, messages, timeout = 5000) {
  try {
    await waitFor(async () => JSON.stringify((await items(page)).map((i) => i.message)) === JSON.stringify(messages), { timeout, interval: 50 });
  } catch (e) {
    throw new Error(`the list never showed ${JSON.stringify(messages)} (shows ${JSON.stringify((await items(page)).map((i) => i.message))})`, { cause: e });
  }
}

/** @param {import('playwright-core').Page} page */
async function openPopover(page) {
  await page.click('notify-inbox >> css=button.bell');
  await page.waitForSelector('notify-inbox >> css=.panel:not([hidden])');
  await page.waitForFunction(() => {
    const el = document.querySelector('notify-inbox');
    const list = el?.shadowRoot?.querySelector('.list');
    return list?.getAttribute('aria-busy') === 'false' && (list.children.length > 0 || el?.shadowRoot?.querySelector('.state .empty, .empty'));
  }, null, { polling: 50, timeout: 5000 });
}

/**
 * The item showing this message, or a control inside it.
 * @param {import('playwright-core').Page} page
 * @param {string} message
 * @param {string} [control] a selector inside the item
 */
function inItem(page, message, control) {
  const item = page.locator('notify-inbox li.item').filter({ has: page.locator('.message', { hasText: new RegExp('^' + message.replace(/[.*+?^${}()|[\]\\#]/g, '\\$&') + '$') }) });
  return control ? item.locator(control) : item;
}

/**
 * Inserts notifications for alice with the inbox's optional columns.
 * @param {Awaited<ReturnType<typeof setup>>} env
 * @param {{message: string, severity?: string, collapseKey?: string, expiresIn?: string, actions?: object[], targetUserId?: string}[]} rows
 * @returns {Promise<string[]>} ids
 */
async function publish(env, rows) {
  const out = [];
  for (const r of rows) {
    const cols = ['message', 'severity', 'target_user_id'];
    const vals = [literal(r.message), literal(r.severity ?? 'medium'), literal(r.targetUserId ?? 'alice')];
    if (r.collapseKey) cols.push('collapse_key'), vals.push(literal(r.collapseKey));
    if (r.expiresIn) cols.push('expires_at'), vals.push(`now() + interval ${literal(r.expiresIn)}`);
    if (r.actions) cols.push('actions'), vals.push(literal(JSON.stringify(r.actions)) + '::jsonb');
    const id = (await env.sql(`INSERT INTO notify.notifications (${cols.join(', ')}) VALUES (${vals.join(', ')}) RETURNING id`)).trim();
    out.push(id);
  }
  return out;
}

/**
 * An inbox call with the browser's session cookie.
 * @param {Awaited<ReturnType<typeof setup>>} env
 * @param {'GET' | 'POST'} method
 * @param {string} pathAndQuery after /api/notifications
 * @param {unknown} [data]
 */
async function api(env, method, pathAndQuery, data) {
  const url = env.server.url + '/api/notifications' + pathAndQuery;
  const res = method === 'GET'
    ? await env.context.request.get(url)
    : await env.context.request.post(url, { data, headers: { Origin: env.server.url } });
  const text = await res.text();
  if (!res.ok()) throw new Error(`${method} ${pathAndQuery}: ${res.status()} ${text}`);
  return text ? JSON.parse(text) : null;
}

/** The focused element inside the inbox's shadow root: its class and data-id of its item. @param {import('playwright-core').Page} page */
function focused(page) {
  return page.evaluate(() => {
    const el = document.querySelector('notify-inbox');
    const a = /** @type {HTMLElement | null} */ (el?.shadowRoot?.activeElement ?? null);
    return { cls: a?.className ?? '', id: a?.closest('li')?.getAttribute('data-id') ?? '', host: document.activeElement === el };
  });
}

/**
 * axe-core on the page; returns the serious and critical violations.
 * @param {import('playwright-core').Page} page
 */
async function axeViolations(page) {
  if (!(await page.evaluate(() => 'axe' in window))) {
    await page.addScriptTag({ content: readFileSync(path.join(WEB, VENDOR['axe.js']), 'utf8') });
  }
  const violations = await page.evaluate(async () => {
    // @ts-ignore axe is the injected global
    const r = await window.axe.run(document, { resultTypes: ['violations'] });
    return r.violations.map((/** @type {any} */ v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((/** @type {any} */ n) => n.target.join(' ')).slice(0, 3) }));
  });
  return violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
}

test('plain page: the badge agrees across two tabs; opening marks everything seen (read stays per item); read and mark all read', async (t) => {
  const env = await setup(t, browser());
  await publish(env, [{ message: 'overnight 1' }, { message: 'overnight 2' }, { message: 'overnight 3' }]);
  const a = await openPage(env);
  const b = await anotherTab(env);
  await waitAttr(a, 'data-unread', '3');
  await waitAttr(b, 'data-unread', '3');
  await waitAttr(a, 'data-unseen', '3');
  await waitAttr(b, 'data-unseen', '3');
  assert.equal(await a.textContent('notify-inbox >> css=.badge'), '3');
  assert.equal(await a.getAttribute('notify-inbox >> css=button.bell', 'aria-expanded'), 'false');
  assert.match(await a.textContent('notify-inbox >> css=.bell-label') ?? '', /3 unread, 3 new/);

  await publish(env, [{ message: 'Order #77 paid' }]);
  await waitAttr(a, 'data-unread', '4');
  await waitAttr(b, 'data-unread', '4');
  await waitAttr(b, 'data-unseen', '4');

  // Tab A opens the inbox: everything is seen, in both tabs and on the server; nothing is read.
  await openPopover(a);
  assert.equal(await a.getAttribute('notify-inbox >> css=button.bell', 'aria-expanded'), 'true');
  await waitItems(a, ['Order #77 paid', 'overnight 3', 'overnight 2', 'overnight 1']);
  assert.deepEqual((await items(a)).map((i) => i.read), [false, false, false, false]);
  await waitAttr(a, 'data-unseen', '0');
  await waitAttr(b, 'data-unseen', '0');
  assert.equal(await b.getAttribute('notify-inbox', 'data-unread'), '4', 'seen is not read');
  const counts = await api(env, 'GET', '/unread-count');
  assert.equal(counts.count, 4);
  assert.equal(counts.unseen, 0);

  // A notification arriving while the popover is open is seen at once.
  await publish(env, [{ message: 'while open' }]);
  await waitItems(a, ['while open', 'Order #77 paid', 'overnight 3', 'overnight 2', 'overnight 1']);
  await waitAttr(a, 'data-unread', '5');
  await waitFor(async () => (await api(env, 'GET', '/unread-count')).unseen === 0, { what: 'unseen 0 on the server' });

  // Mark one read in A: B's badge follows; B's list (opened) shows it read.
  await openPopover(b);
  await inItem(a, 'overnight 2', '[data-act=read]').click();
  await waitAttr(b, 'data-unread', '4');
  await waitFor(async () => (await items(b)).find((i) => i.message === 'overnight 2')?.read === true, { what: 'B shows overnight 2 read' });
  // And unread again.
  await inItem(a, 'overnight 2', '[data-act=read]').click();
  await waitAttr(b, 'data-unread', '5');

  // Mark all read in B: everything in both.
  await b.click('notify-inbox >> css=[data-act=mark-all]');
  await waitAttr(a, 'data-unread', '0');
  await waitAttr(b, 'data-unread', '0');
  await waitFor(async () => (await items(a)).every((i) => i.read), { what: 'every item read in A' });
  assert.equal(await a.isHidden('notify-inbox >> css=.badge'), true, 'no badge at 0');

  // Escape closes and gives focus back to the bell.
  await a.focus('notify-inbox >> css=li.item');
  await a.keyboard.press('Escape');
  await a.waitForSelector('notify-inbox >> css=.panel', { state: 'hidden' });
  assert.equal((await focused(a)).cls, 'bell');
  assert.deepEqual(env.consoleErrors(), []);
});

test('plain page: archive and snooze remove an item in every tab; a snoozed one comes back unread, with a toast', async (t) => {
  const env = await setup(t, browser());
  await publish(env, [{ message: 'keep me' }, { message: 'archive me' }, { message: 'snooze me' }]);
  const a = await openPage(env);
  const b = await anotherTab(env);
  await openPopover(a);
  await openPopover(b);
  await waitItems(b, ['snooze me', 'archive me', 'keep me']);
  await waitAttr(b, 'data-unread', '3');

  await inItem(a, 'archive me', '[data-act=archive]').click();
  await waitItems(a, ['snooze me', 'keep me']);
  await waitItems(b, ['snooze me', 'keep me']);
  await waitAttr(b, 'data-unread', '2');
  const history = await api(env, 'GET', '?archived=true');
  assert.deepEqual(history.notifications.map((/** @type {any} */ n) => [n.message, n.archived]), [['snooze me', false], ['archive me', true], ['keep me', false]]);
  assert.deepEqual((await api(env, 'GET', '')).notifications.map((/** @type {any} */ n) => n.message), ['snooze me', 'keep me']);
  // Unarchived elsewhere (another device): both lists fetch it back.
  const archivedId = history.notifications[1].id;
  await api(env, 'POST', `/${archivedId}/unarchive`);
  await waitItems(a, ['snooze me', 'archive me', 'keep me']);
  await waitItems(b, ['snooze me', 'archive me', 'keep me']);
  await waitAttr(b, 'data-unread', '3');
  await inItem(b, 'archive me', '[data-act=archive]').click();
  await waitItems(a, ['snooze me', 'keep me']);

  // The snooze menu: a menu button, three choices, Escape closes it.
  const snoozeButton = inItem(a, 'snooze me', '[data-act=snooze]');
  await snoozeButton.click();
  assert.equal(await snoozeButton.getAttribute('aria-expanded'), 'true');
  const choices = await a.$$eval('notify-inbox >> css=li.item [role=menu]:not([hidden]) [role=menuitem]', (bs) => bs.map((b) => b.textContent));
  assert.deepEqual(choices, ['1 hour', 'Tomorrow, 9:00', 'Next week (Mon 9:00)']);
  assert.equal(await a.evaluate(() => document.querySelector('notify-inbox')?.shadowRoot?.activeElement?.getAttribute('data-choice')), 'hour', 'focus is on the first choice');
  await a.keyboard.press('ArrowDown');
  await a.keyboard.press('Escape');
  assert.equal(await snoozeButton.getAttribute('aria-expanded'), 'false');
  await snoozeButton.click();
  await a.click('notify-inbox >> css=[role=menu]:not([hidden]) [data-choice=hour]');
  await waitItems(a, ['keep me']);
  await waitItems(b, ['keep me']);
  await waitAttr(b, 'data-unread', '1');
  assert.deepEqual((await api(env, 'GET', '?archived=true')).notifications.map((/** @type {any} */ n) => n.message), ['archive me', 'keep me'], 'a snoozed one is not listed');

  // Snoozed for 2 seconds through the API: it goes, then comes back unread in both tabs, with a toast (high).
  const [back] = await publish(env, [{ message: 'back soon', severity: 'high' }]);
  await waitItems(a, ['back soon', 'keep me']);
  await a.click(`notify-inbox >> css=.toast[data-id="${back}"] [data-act=toast-close]`);
  await api(env, 'POST', `/${back}/snooze`, { until: new Date(Date.now() + 2000).toISOString() });
  await waitItems(a, ['keep me']);
  await waitItems(b, ['keep me']);
  await waitItems(a, ['back soon', 'keep me'], 15000);
  await waitItems(b, ['back soon', 'keep me']);
  assert.deepEqual((await items(b)).map((i) => i.read), [false, false]);
  await a.waitForSelector(`notify-inbox >> css=.toast[data-id="${back}"]`, { timeout: 5000 });
  await waitAttr(b, 'data-unread', '2');
  assert.deepEqual(env.consoleErrors(), []);
});

test('plain page: a newer notification with the same collapseKey replaces the older; an expired one disappears; action buttons record the click', async (t) => {
  const env = await setup(t, browser());
  await publish(env, [{ message: 'plain' }, { message: '3 new orders', collapseKey: 'orders' }]);
  const page = await openPage(env);
  await openPopover(page);
  await waitItems(page, ['3 new orders', 'plain']);
  await publish(env, [{ message: '4 new orders', collapseKey: 'orders' }]);
  await waitItems(page, ['4 new orders', 'plain']);
  await waitAttr(page, 'data-unread', '2');
  assert.deepEqual((await api(env, 'GET', '')).notifications.map((/** @type {any} */ n) => n.message), ['4 new orders', 'plain']);
  // After a reload the list is the server's: still one.
  await page.reload();
  await waitCount(page);
  await openPopover(page);
  await waitItems(page, ['4 new orders', 'plain']);

  await publish(env, [{ message: 'gone in 3 s', expiresIn: '3 seconds' }]);
  await waitItems(page, ['gone in 3 s', '4 new orders', 'plain']);
  await waitItems(page, ['4 new orders', 'plain'], 8000);

  const [id] = await publish(env, [{
    message: 'Refund requested',
    actions: [{ id: 'approve', label: 'Approve' }, { id: 'open', label: 'Open order', url: '/e2e/inbox.html#order-7' }],
  }]);
  await waitItems(page, ['Refund requested', '4 new orders', 'plain']);
  assert.deepEqual(await inItem(page, 'Refund requested', '.action').allTextContents(), ['Approve', 'Open order']);
  await inItem(page, 'Refund requested', '.action[data-action=approve]').click();
  await waitFor(async () => (await items(page))[0].read, { what: 'read after the click' });
  await waitFor(async () => {
    const n = (await api(env, 'GET', '')).notifications.find((/** @type {any} */ x) => x.id === id);
    return n && n.interaction === 'approve' && n.read && n.interactedAt;
  }, { what: 'the click recorded' });
  // An action with a url: recorded, then followed.
  await inItem(page, 'Refund requested', '.action[data-action=open]').click();
  await page.waitForURL((u) => u.hash === '#order-7');
  await waitFor(async () => (await api(env, 'GET', '')).notifications.find((/** @type {any} */ x) => x.id === id)?.interaction === 'open', { what: 'the second click recorded' });
  assert.deepEqual(env.consoleErrors(), []);
});

test('plain page: live high and critical notifications show toasts (critical as an alert, until dismissed); others do not', async (t) => {
  const env = await setup(t, browser());
  const page = await openPage(env);
  await waitAttr(page, 'data-unread', '0');
  const [, , high, critical] = await publish(env, [
    { message: 'fyi', severity: 'low' },
    { message: 'normal', severity: 'medium' },
    { message: 'Disk 90% full', severity: 'high' },
    { message: 'Payments down', severity: 'critical' },
  ]);
  await waitAttr(page, 'data-unread', '4');
  await page.waitForSelector(`notify-inbox >> css=.toast[data-id="${critical}"]`);
  const toasts = await page.$$eval('notify-inbox >> css=.toast', (ts) => ts.map((x) => [x.getAttribute('data-severity'), x.getAttribute('role'), x.querySelector('.message')?.textContent]));
  assert.deepEqual(toasts, [['high', null, 'Disk 90% full'], ['critical', 'alert', 'Payments down']]);
  assert.equal(await page.getAttribute('notify-inbox >> css=.toasts', 'aria-live'), 'polite');
  t.diagnostic('screenshot: ' + (await screenshot(page, 'inbox-element-toasts', { fullPage: false })));
  await page.click(`notify-inbox >> css=.toast[data-id="${high}"] [data-act=toast-close]`);
  assert.equal(await page.$$eval('notify-inbox >> css=.toast', (ts) => ts.length), 1);
  // "Show in inbox" opens the popover.
  await page.click(`notify-inbox >> css=.toast[data-id="${critical}"] [data-act=toast-open]`);
  await page.waitForSelector('notify-inbox >> css=.panel:not([hidden])');
  await waitItems(page, ['Payments down', 'Disk 90% full', 'normal', 'fyi']);
  assert.equal(await page.$$eval('notify-inbox >> css=.toast', (ts) => ts.length), 0);
  assert.deepEqual(env.consoleErrors(), []);
});

test('plain page: keyboard navigation, ARIA roles, axe-core (no serious or critical violations), infinite scroll; screenshots desktop, phone and dark', async (t) => {
  const env = await setup(t, browser());
  const rows = [];
  for (let i = 1; i <= 26; i++) rows.push({ message: `Report ${i} is ready`, severity: 'low' });
  await publish(env, rows);
  await publish(env, [
    { message: 'Invoice #2041 overdue', severity: 'high' },
    { message: 'Refund requested for order #7', actions: [{ id: 'approve', label: 'Approve' }, { id: 'reject', label: 'Reject' }] },
    { message: 'Build 512 failed on main', severity: 'critical' },
    { message: 'Anna commented on your post' },
  ]);
  const page = await openPage(env);
  await waitAttr(page, 'data-unread', '30');

  // Open with the keyboard.
  await page.focus('notify-inbox >> css=button.bell');
  assert.equal(await page.getAttribute('notify-inbox >> css=button.bell', 'aria-haspopup'), 'dialog');
  await page.keyboard.press('Enter');
  await page.waitForSelector('notify-inbox >> css=.panel[role=dialog]:not([hidden])');
  await waitFor(async () => (await items(page)).length >= 20, { what: 'the first page' });
  const list = await items(page);
  assert.equal(list[0].message, 'Anna commented on your post');
  // Arrow keys move between items; Home and End.
  await page.focus('notify-inbox >> css=li.item[tabindex="0"]');
  assert.equal((await focused(page)).id, list[0].id);
  await page.keyboard.press('ArrowDown');
  assert.equal((await focused(page)).id, list[1].id);
  await page.keyboard.press('ArrowDown');
  await page.keyboard.press('ArrowUp');
  assert.equal((await focused(page)).id, list[1].id);
  assert.equal(await page.$$eval('notify-inbox >> css=li.item[tabindex="0"]', (l) => l.length), 1, 'one tab stop in the list (roving tabindex)');
  await page.keyboard.press('Home');
  assert.equal((await focused(page)).id, list[0].id);
  // Enter on an unread item marks it read.
  await page.keyboard.press('Enter');
  await waitAttr(page, 'data-unread', '29');

  // Infinite scroll: scrolling to the end loads the rest (30 in all), each once.
  await page.$eval('notify-inbox', (el) => {
    const l = /** @type {HTMLElement} */ (el.shadowRoot?.querySelector('.list'));
    l.scrollTop = l.scrollHeight;
  });
  await waitFor(async () => (await items(page)).length === 30, { what: 'all 30 after scrolling' });
  const all = await items(page);
  assert.equal(new Set(all.map((i) => i.id)).size, 30);
  assert.equal(all.at(-1)?.message, 'Report 1 is ready');
  await page.$eval('notify-inbox', (el) => {
    /** @type {HTMLElement} */ (el.shadowRoot?.querySelector('.list')).scrollTop = 0;
  });

  const violations = await axeViolations(page);
  assert.deepEqual(violations, [], 'axe: serious or critical violations with the popover open');
  t.diagnostic('screenshot: ' + (await screenshot(page, 'inbox-element-desktop', { fullPage: false })));

  // Snooze menu open, for the record.
  await inItem(page, 'Refund requested for order #7', '[data-act=snooze]').click();
  assert.deepEqual(await axeViolations(page), [], 'axe: with the snooze menu open');
  t.diagnostic('screenshot: ' + (await screenshot(page, 'inbox-element-snooze-menu', { fullPage: false })));
  await page.keyboard.press('Escape');

  // Phone width.
  await page.setViewportSize({ width: 390, height: 844 });
  await page.waitForTimeout(100);
  const box = await page.locator('notify-inbox >> css=.panel').boundingBox();
  assert.ok(box && box.x >= 0 && box.x + box.width <= 390, `the popover fits the phone's width: ${JSON.stringify(box)}`);
  t.diagnostic('screenshot: ' + (await screenshot(page, 'inbox-element-phone', { fullPage: false })));

  // Dark: the browser's preference, and the theme attribute.
  await page.setViewportSize({ width: 1280, height: 800 });
  await page.emulateMedia({ colorScheme: 'dark' });
  const bg = () => page.$eval('notify-inbox', (el) => getComputedStyle(/** @type {Element} */ (el.shadowRoot?.querySelector('.panel'))).backgroundColor);
  assert.equal(await bg(), 'rgb(31, 41, 55)');
  assert.deepEqual(await axeViolations(page), [], 'axe: dark theme');
  t.diagnostic('screenshot: ' + (await screenshot(page, 'inbox-element-dark', { fullPage: false })));
  await page.$eval('notify-inbox', (el) => el.setAttribute('theme', 'light'));
  assert.equal(await bg(), 'rgb(255, 255, 255)', 'theme="light" wins over the preference');
  await page.emulateMedia({ colorScheme: 'light' });
  await page.$eval('notify-inbox', (el) => el.setAttribute('theme', 'dark'));
  assert.equal(await bg(), 'rgb(31, 41, 55)', 'theme="dark"');
  // Theming from outside through custom properties.
  await page.addStyleTag({ content: 'notify-inbox { --notify-inbox-bg: rgb(1, 2, 3); }' });
  assert.equal(await bg(), 'rgb(1, 2, 3)');

  // Escape closes; focus returns to the bell.
  await page.focus('notify-inbox >> css=li.item[tabindex="0"]');
  await page.keyboard.press('Escape');
  assert.equal(await page.getAttribute('notify-inbox >> css=button.bell', 'aria-expanded'), 'false');
  assert.equal((await focused(page)).cls, 'bell');
  assert.deepEqual(env.consoleErrors(), []);
});

test('plain page: an empty inbox says so; a failing history shows an error with a retry that works', async (t) => {
  const env = await setup(t, browser());
  const page = await openPage(env);
  await openPopover(page);
  await page.waitForSelector('notify-inbox >> css=.state.empty');
  assert.match(await page.textContent('notify-inbox >> css=.state.empty') ?? '', /all caught up/);
  await page.click('notify-inbox >> css=button.bell');

  // The next history request fails once (503), then works.
  const allow = env.allowConsole(/503|Failed to load resource/);
  let failures = 1;
  await env.context.route((u) => u.pathname === '/api/notifications' && u.origin === env.server.url, (route) => {
    if (route.request().method() !== 'GET') return route.continue();
    if (failures-- > 0) return route.fulfill({ status: 503, contentType: 'application/json', body: JSON.stringify({ error: 'database unavailable' }) });
    return route.continue();
  });
  await publish(env, [{ message: 'after the outage' }]);
  await page.reload(); // not live after the reload: only the history can show it
  await waitCount(page);
  await waitAttr(page, 'data-unread', '1');
  await page.click('notify-inbox >> css=button.bell');
  await page.waitForSelector('notify-inbox >> css=.state.error');
  assert.match(await page.textContent('notify-inbox >> css=.state.error') ?? '', /database unavailable/);
  assert.equal(await page.getAttribute('notify-inbox >> css=.state.error', 'role'), 'alert');
  t.diagnostic('screenshot: ' + (await screenshot(page, 'inbox-element-error', { fullPage: false })));
  await page.click('notify-inbox >> css=[data-act=retry]');
  await waitItems(page, ['after the outage']);
  assert.ok(allow() >= 1);
  assert.deepEqual(env.consoleErrors(), []);
});

test('React page: <NotifyInbox> renders the element (StrictMode, one stream), its events reach the callbacks', async (t) => {
  const env = await setup(t, browser());
  await publish(env, [{ message: 'before' }]);
  const page = await openPage(env, '/e2e/react.html');
  await page.waitForFunction(() => document.getElementById('unread')?.textContent === '1', null, { polling: 50, timeout: 5000 });
  const status = await env.status();
  assert.equal(status.connections.mine, 1, 'StrictMode mounted twice; one stream remains');

  await publish(env, [{ message: 'Ship order #9', severity: 'high', actions: [{ id: 'ship', label: 'Ship', url: '/elsewhere' }] }]);
  await page.waitForFunction(() => document.getElementById('unread')?.textContent === '2', null, { polling: 50, timeout: 5000 });
  await page.waitForSelector('notify-inbox >> css=.toast[data-severity=high]');
  await openPopover(page);
  await waitItems(page, ['Ship order #9', 'before']);
  await inItem(page, 'Ship order #9', '.action[data-action=ship]').click();
  await page.waitForFunction(() => document.getElementById('unread')?.textContent === '1', null, { polling: 50, timeout: 5000 });
  await page.keyboard.press('Escape');
  const events = await page.evaluate(() => /** @type {any} */ (window).inboxEvents);
  assert.deepEqual(events, [
    ['notification', 'Ship order #9'],
    ['open'],
    ['action', 'ship', 'Ship order #9'],
    ['close'],
  ]);
  assert.equal(new URL(page.url()).pathname, '/e2e/react.html', 'onAction prevented the navigation');
  assert.deepEqual(await axeViolations(page), []);
  t.diagnostic('screenshot: ' + (await screenshot(page, 'inbox-element-react', { fullPage: false })));
  assert.deepEqual(env.consoleErrors(), []);
});

test('monitoring page: the header has the inbox, sharing the page’s client (one stream), with the same count as the page', async (t) => {
  const env = await setup(t, browser());
  await publish(env, [{ message: 'one' }, { message: 'two' }]);
  const page = await env.newPage();
  await signIn(page, env.server.url, { user: 'alice', roles: ['USER'] });
  await waitOpen(page);
  await waitCount(page);
  await waitAttr(page, 'data-unread', '2');
  assert.equal(await page.textContent('#unread-badge'), '2');
  assert.equal(await page.$eval('notify-inbox', (el) => el.closest('header')?.className), 'topbar');
  assert.equal(await page.evaluate(() => window.notifydTestPage.attempts.length), 1, 'one EventSource in the tab');
  await openPopover(page);
  await waitItems(page, ['two', 'one']);
  await inItem(page, 'two', '[data-act=read]').click();
  await page.waitForFunction(() => document.getElementById('unread-badge')?.textContent === '1', null, { polling: 50, timeout: 5000 });
  t.diagnostic('screenshot: ' + (await screenshot(page, 'inbox-element-monitoring', { fullPage: false })));
  assert.deepEqual(env.consoleErrors(), []);
});
