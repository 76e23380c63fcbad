// The monitoring page in a real browser: sign-in through the development
// issuer, notifications inserted by SQL appearing, rendering (text only,
// severity, time), the forms and their errors, the admin panels, sign-out,
// and screenshots at laptop and phone widths.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { screenshot, setup, shown, signIn, useBrowser, waitFor, waitOpen, waitShown } from './harness.js';

const browser = useBrowser();

test('sign in through the development issuer and see a notification inserted by SQL', async (t) => {
  const env = await setup(t, browser());
  const base = env.server.url;

  // Without a session the page sends the browser to sign in, and back.
  const res = await fetch(base + '/test-notifications?x=1', { redirect: 'manual' });
  assert.equal(res.status, 302);
  assert.equal(res.headers.get('location'), '/auth/login?redirect=%2Ftest-notifications%3Fx%3D1');

  const page = await env.newPage();
  /** @type {string[]} */
  const visited = [];
  page.on('framenavigated', (f) => f === page.mainFrame() && visited.push(new URL(f.url()).pathname));
  await signIn(page, base, { user: 'alice', roles: ['ADMIN'] });
  assert.ok(visited.includes('/dev-issuer/authorize'), 'went through the issuer: ' + visited.join(' → '));

  const response = await page.reload();
  await waitOpen(page);
  const csp = response?.headers()['content-security-policy'] ?? '';
  assert.match(csp, /default-src 'self'/);

  assert.equal(await page.textContent('#user'), 'alice');
  assert.equal(await page.textContent('#user-roles'), 'ADMIN');
  assert.equal(await page.getAttribute('#leader', 'data-leader'), 'true');
  assert.equal(await page.textContent('#last-event-id'), 'none');
  assert.equal(await page.textContent('#heartbeat'), 'every 1.0 s');

  const [id] = await env.insert([{ message: 'Order #1 shipped', severity: 'high', module: 'orders', actionType: 'shipped' }]);
  const [n] = await waitShown(page, 1);
  assert.equal(n.id, id);
  assert.equal(n.message, 'Order #1 shipped');
  assert.equal(n.severity, 'high');
  assert.equal(n.module, 'orders · shipped');
  await page.waitForFunction((seq) => document.getElementById('last-event-id')?.textContent === String(seq), n.seq, { polling: 50 });

  // The admin panels: this browser's one stream, the queue with the item sent.
  await page.waitForSelector('#admin:not([hidden])');
  await page.waitForFunction(() => document.getElementById('q-sent')?.textContent === '1', null, { polling: 100, timeout: 10000 });
  assert.equal(await page.textContent('#streams-total'), '1');
  assert.equal(await page.textContent('#streams tbody tr td:nth-child(2)'), 'alice');
  const recent = page.locator('#recent tbody tr').first();
  assert.equal(await recent.getAttribute('data-status'), 'sent');
  assert.equal(await recent.locator('td:nth-child(4)').textContent(), '1/3');
  assert.equal(await recent.locator('td:nth-child(5)').textContent(), 'Order #1 shipped');

  // Reconnect: a new stream resuming from the last id, nothing shown twice.
  const before = await page.evaluate(() => window.notifydTestPage.attempts.length);
  await page.click('#reconnect');
  await page.waitForFunction((n) => window.notifydTestPage.attempts.length > n, before, { polling: 50 });
  await waitOpen(page);
  const last = await page.evaluate(() => window.notifydTestPage.attempts.at(-1)?.url ?? '');
  assert.match(last, new RegExp(`lastEventId=${n.seq}$`));
  await env.insert([{ message: 'after reconnect' }]);
  const items = await waitShown(page, 2);
  assert.deepEqual(items.map((i) => i.message), ['after reconnect', 'Order #1 shipped']);

  assert.deepEqual(env.consoleErrors(), []);
});

test('notifications render as text, with a severity badge and their time', async (t) => {
  const env = await setup(t, browser());
  const page = await env.newPage();
  await signIn(page, env.server.url, { user: 'mallory', roles: ['USER'] });

  const evil = '<img src=x onerror=alert(1)>';
  await env.insert([
    { message: 'all quiet', severity: 'low', module: 'backup' },
    { message: 'disk at 80%', severity: 'medium', module: 'disk' },
    { message: 'disk at 95%', severity: 'high', module: 'disk' },
    { message: 'database down', severity: 'critical', module: 'db' },
    { message: evil, severity: 'high', module: '<script>alert(2)</script>', details: '<b>not bold</b> & "quoted"' },
  ]);
  const items = await waitShown(page, 5);
  assert.equal(items[0].message, evil, 'the markup is shown as text');
  assert.equal(items[0].module, '<script>alert(2)</script>');
  assert.equal(await page.locator('#notifications > li').first().locator('.details').textContent(), '<b>not bold</b> & "quoted"');
  assert.equal(await page.locator('#notifications img, #notifications script, #notifications b').count(), 0, 'no element made from data');

  // Severity: the badge says it, and each level has its own colour.
  assert.deepEqual(items.slice(1).map((i) => i.severity), ['critical', 'high', 'medium', 'low']);
  const colours = await page.$$eval('#notifications > li .badge', (bs) => bs.map((b) => getComputedStyle(b).backgroundColor));
  assert.equal(new Set(colours.slice(1)).size, 4, 'four severities, four colours: ' + colours.join(' '));

  // Time: the notification's created_at, shown as the time of day (the
  // context runs in UTC with en-GB: HH:MM:SS).
  const created = (await env.sql(`SELECT to_char(created_at AT TIME ZONE 'UTC', 'HH24:MI:SS') || ' ' || extract(epoch FROM created_at)::text
      FROM notify.notifications WHERE message = 'database down'`)).trim();
  const [hms, epoch] = created.split(' ');
  const critical = items[1];
  // (Just after midnight the page would also show the date before the time.)
  assert.ok(critical.time === hms || critical.time.endsWith(' ' + hms), `shown ${critical.time}, created ${hms}`);
  assert.ok(Math.abs(Date.parse(critical.datetime) - Number(epoch) * 1000) < 1000, `datetime ${critical.datetime} is created_at ${epoch}`);

  // Nothing ran: no dialog, no error.
  assert.deepEqual(env.consoleErrors(), []);
});

test('forms: a test notification, a targeted one and a broadcast; API errors are shown', async (t) => {
  const env = await setup(t, browser());
  const page = await env.newPage();
  await signIn(page, env.server.url, { user: 'alice', roles: ['ADMIN'] });
  await page.waitForSelector('#form-targeted:not([hidden])');

  await page.fill('#form-test [name=message]', 'hello me');
  await page.selectOption('#form-test [name=severity]', 'critical');
  await page.click('#form-test button[type=submit]');
  await page.waitForSelector('#form-test .form-result.ok');
  let items = await waitShown(page, 1);
  assert.equal(items[0].message, 'hello me');
  assert.equal(items[0].severity, 'critical');

  const targeted = '#form-targeted';
  await page.fill(`${targeted} [name=user]`, 'alice');
  await page.fill(`${targeted} [name=module]`, 'orders');
  await page.fill(`${targeted} [name=actionType]`, 'new_order');
  await page.fill(`${targeted} [name=message]`, 'New order #123');
  await page.fill(`${targeted} [name=details]`, '3 items');
  await page.selectOption(`${targeted} [name=severity]`, 'high');
  await page.click(`${targeted} button[type=submit]`);
  await page.waitForSelector(`${targeted} .form-result.ok`);
  items = await waitShown(page, 2);
  assert.equal(items[0].message, 'New order #123');
  assert.equal(items[0].module, 'orders · new_order');

  // The server's error reaches the user (and the browser logs the 400s).
  const badRequests = env.allowConsole(/Failed to load resource: the server responded with a status of 400/);
  await page.fill(`${targeted} [name=message]`, '   ');
  await page.click(`${targeted} button[type=submit]`);
  await page.waitForSelector(`${targeted} .form-result.error-text`);
  assert.match((await page.textContent(`${targeted} .form-result`)) ?? '', /message is required/);
  await page.fill(`${targeted} [name=message]`, 'x');
  await page.fill(`${targeted} [name=user]`, '');
  await page.fill(`${targeted} [name=roles]`, 'ADMIN, ,');
  await page.selectOption(`${targeted} [name=severity]`, 'low');
  await page.evaluate(() => {
    // A value the select does not offer, as a modified page could send.
    const s = /** @type {HTMLSelectElement} */ (document.querySelector('#form-targeted [name=severity]'));
    s.add(new Option('urgent', 'urgent', true, true));
  });
  await page.click(`${targeted} button[type=submit]`);
  await page.waitForSelector(`${targeted} .form-result.error-text`);
  assert.match((await page.textContent(`${targeted} .form-result`)) ?? '', /severity must be one of/);

  await page.fill('#form-broadcast [name=message]', 'to the admins');
  await page.fill('#form-broadcast [name=roles]', 'ADMIN');
  await page.click('#form-broadcast button[type=submit]');
  await page.waitForSelector('#form-broadcast .form-result.ok');
  items = await waitShown(page, 3);
  assert.equal(items[0].message, 'to the admins');
  assert.equal(await page.locator('#notifications > li').first().locator('.target').textContent(), 'to roles ADMIN');

  assert.equal(badRequests(), 2, 'the two refused requests, nothing else');
  assert.deepEqual(env.consoleErrors(), []);
});

test('a plain user sees this tab and the test form, not the admin forms or the queue', async (t) => {
  const env = await setup(t, browser());
  const page = await env.newPage();
  await signIn(page, env.server.url, { user: 'bob', roles: ['USER'] });
  await page.waitForFunction(() => /Your streams on this node: 1/.test(document.getElementById('mine')?.textContent ?? ''), null, {
    polling: 100,
  });
  assert.equal(await page.isHidden('#form-broadcast'), true);
  assert.equal(await page.isHidden('#form-targeted'), true);
  assert.equal(await page.isHidden('#admin'), true);
  assert.equal(await page.isVisible('#form-test'), true);

  // Targeting: an admin-only notification never reaches bob; his own does.
  await env.insert([{ message: 'for admins', targetRoles: ['ADMIN'] }, { message: 'for bob', targetUserId: 'bob' }]);
  const items = await waitShown(page, 1);
  await page.click('#form-test button[type=submit]');
  await waitShown(page, 2);
  assert.deepEqual((await shown(page)).map((i) => i.message), ['Test notification', 'for bob']);
  assert.equal(items.length, 1);

  assert.deepEqual(env.consoleErrors(), []);
});

test('the queue panel shows counts, attempts and last errors; screenshots at laptop and phone widths', async (t) => {
  const env = await setup(t, browser());
  const page = await env.newPage();
  await signIn(page, env.server.url, { user: 'alice', roles: ['ADMIN', 'OPS'] });

  await env.insert([
    { message: 'Nightly backup finished', severity: 'low', module: 'backup', actionType: 'done' },
    { message: 'Order #4711 paid', severity: 'medium', module: 'orders', actionType: 'paid', details: '2 items, 49.90 EUR' },
    { message: 'Disk /var at 92%', severity: 'high', module: 'monitoring', actionType: 'disk', targetRoles: ['OPS'] },
    { message: 'Payment provider unreachable', severity: 'critical', module: 'payments', actionType: 'outage', details: 'since 14:02, 37 orders waiting' },
    { message: '<img src=x onerror=alert(1)>', severity: 'medium', module: 'security', details: 'shown as text, never as markup', targetUserId: 'alice' },
  ]);
  await waitShown(page, 5);
  // A failed item and one waiting for its retry, as a worker would leave them
  // (made in the inserting transaction, so no worker claims them first).
  await env.sql(`BEGIN;
    INSERT INTO notify.notifications (message, module) VALUES ('Welcome e-mail for user 42', 'mail');
    UPDATE notify.queue_items SET status = 'failed', attempts = 3, last_error = 'publish: connection reset by peer', updated_at = now()
      WHERE notification_id = (SELECT id FROM notify.notifications WHERE message = 'Welcome e-mail for user 42');
    INSERT INTO notify.notifications (message, module) VALUES ('Invoice 2024-117 ready', 'billing');
    UPDATE notify.queue_items SET attempts = 1, last_error = 'publish: statement timeout', next_attempt_at = now() + interval '10 minutes', updated_at = now()
      WHERE notification_id = (SELECT id FROM notify.notifications WHERE message = 'Invoice 2024-117 ready');
    COMMIT;`);

  await page.waitForFunction(() => document.getElementById('q-failed')?.textContent === '1', null, { polling: 100, timeout: 10000 });
  assert.equal(await page.textContent('#q-pending'), '1');
  assert.equal(await page.textContent('#q-sent'), '5');
  assert.notEqual(await page.textContent('#q-oldest'), 'none');
  const failed = page.locator('#recent tbody tr[data-status=failed]');
  assert.equal(await failed.locator('td:nth-child(4)').textContent(), '3/3');
  assert.equal(await failed.locator('td:nth-child(6)').textContent(), 'publish: connection reset by peer');
  const waiting = page.locator('#recent tbody tr[data-status=pending]');
  assert.equal(await waiting.locator('td:nth-child(4)').textContent(), '1/3');
  assert.equal(await waiting.locator('td:nth-child(6)').textContent(), 'publish: statement timeout');
  assert.match((await waiting.locator('td:nth-child(3)').textContent()) ?? '', /^pendingnext in (9|10) min$/);
  assert.equal(await page.locator('#recent tbody tr').count(), 7);

  // Fill the forms' result lines as a user would see them after sending.
  await page.click('#form-test button[type=submit]');
  await page.waitForSelector('#form-test .form-result.ok');
  await waitShown(page, 6);
  const badRequests = env.allowConsole(/Failed to load resource: the server responded with a status of 400/);
  await page.click('#form-targeted button[type=submit]');
  await page.waitForSelector('#form-targeted .form-result.error-text');
  assert.equal(badRequests(), 1);

  const noOverflow = () => document.documentElement.scrollWidth <= document.documentElement.clientWidth;
  assert.ok(await page.evaluate(noOverflow), 'no sideways scrolling at 1280 px');
  t.diagnostic('screenshot: ' + (await screenshot(page, 'test-notifications-admin-laptop')));

  await page.setViewportSize({ width: 390, height: 844 });
  await waitFor(() => page.evaluate(noOverflow), { what: 'no sideways scrolling at 390 px', timeout: 3000 });
  for (const sel of ['#reconnect', '#signout', '#form-test button[type=submit]']) {
    const box = await page.locator(sel).boundingBox();
    assert.ok(box && box.x >= 0 && box.x + box.width <= 390, `${sel} fits the phone's width`);
  }
  t.diagnostic('screenshot: ' + (await screenshot(page, 'test-notifications-admin-phone')));
  await page.evaluate(() => window.scrollTo(0, 0));
  t.diagnostic('screenshot: ' + (await screenshot(page, 'test-notifications-admin-phone-top', { fullPage: false })));
  t.diagnostic('screenshot: ' + (await screenshot(page.locator('#server'), 'test-notifications-admin-phone-server')));

  assert.deepEqual(env.consoleErrors(), []);
});

test('sign out ends the session and the stream', async (t) => {
  const env = await setup(t, browser());
  const page = await env.newPage();
  await signIn(page, env.server.url, { user: 'alice', roles: ['ADMIN'] });
  const cookie = (await env.context.cookies()).find((c) => c.name === 'notifyd_session');
  assert.ok(cookie, 'signed in with a session cookie');
  await page.waitForSelector('#conn-state[data-state="open"]');
  // The server ends the session, and with it the stream (a "logout"
  // closing status), before the page has the sign-out's answer: hold the
  // answer back so that the stream's end always comes first. The page
  // must still say it signed out, not that the session ended.
  await page.route('**/auth/logout', async (route) => {
    const answer = await route.fetch();
    await new Promise((r) => setTimeout(r, 500));
    await route.fulfill({ response: answer });
  });
  const attemptsBefore = await page.evaluate(() => window.notifydTestPage.attempts.length);
  await page.click('#signout');
  await page.waitForSelector('#banner:not([hidden])');
  // Requests the page made as the session ended (its inbox's counts, a
  // status poll: under load the browser may send them after the sign-out)
  // are answered 401, and the browser logs each; nothing after that.
  const signedOutAt = Date.now();
  assert.match((await page.textContent('#banner')) ?? '', /Signed out\./);
  assert.equal(await page.getAttribute('#conn-state', 'data-state'), 'closed');
  assert.equal((await env.context.cookies()).some((c) => c.name === 'notifyd_session'), false, 'cookie removed');
  // The old cookie no longer opens a stream, and the page sends it to sign in.
  const res = await fetch(env.server.url + '/api/notifications/ws', { headers: { Cookie: `notifyd_session=${cookie.value}` } });
  assert.equal(res.status, 401);
  const page2 = await fetch(env.server.url + '/test-notifications', { headers: { Cookie: `notifyd_session=${cookie.value}` }, redirect: 'manual' });
  assert.equal(page2.status, 302);
  // The stream's "logout" closing status is terminal: no reconnect.
  assert.equal(await page.evaluate(() => window.notifydTestPage.attempts.length), attemptsBefore, 'no stream attempt after signing out');
  await page.click('#banner a');
  await page.waitForURL((u) => u.pathname.startsWith('/dev-issuer/'));
  assert.deepEqual(
    env.consoleErrors().filter((e) => !(e.at < signedOutAt && /status of 401/.test(e.text))),
    [],
  );
});
