// A third-party SSE client across a server crash and a shutdown: the npm
// `eventsource` package (the WHATWG EventSource for Node), signed in with a
// bearer token through its `fetch` option, reconnects by itself when
// notifyd is SIGKILLed or SIGTERMed and started again on the same address,
// resumes with Last-Event-ID, and ends with every notification once, in
// order, nothing foreign. No browser: the stream is read by the library.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { EventSource } from 'eventsource';

import { setupServer, waitFor } from './harness.js';

/** The shortest retry: notifyd sends (internal/stream closingRetryFloor). */
const MIN_RETRY_MS = 250;

for (const signal of /** @type {const} */ (['SIGKILL', 'SIGTERM'])) {
  test(`eventsource reconnects by itself across a ${signal} and a restart: every notification once, in order`, async (t) => {
    const env = await setupServer(t);
    const { server } = env;
    const [alice, publisher] = await Promise.all([env.token('alice', ['USER']), env.token('publisher', ['ADMIN'])]);

    /** Every request the library made: the resume point it sent and how it went. */
    const requests = [];
    /** Every message event, as the library dispatched it. */
    const events = [];
    const errors = [];
    let opens = 0;
    const es = new EventSource(server.url + '/api/notifications/ws', {
      fetch: (input, init) => {
        const headers = new Headers(init?.headers);
        headers.set('Authorization', `Bearer ${alice}`);
        const req = { at: Date.now(), lastEventId: headers.get('Last-Event-ID'), status: 0, error: '' };
        requests.push(req);
        return fetch(input, { ...init, headers }).then(
          (res) => ((req.status = res.status), res),
          (err) => {
            req.error = String(err?.cause?.code ?? err);
            throw err;
          },
        );
      },
    });
    t.after(() => es.close());
    es.onopen = () => opens++;
    es.onerror = (e) => errors.push({ at: Date.now(), message: e.message, code: e.code, readyState: es.readyState });
    es.onmessage = (e) => events.push({ data: e.data, lastEventId: e.lastEventId });

    /** The notification messages received so far, parsed. */
    const notifications = () =>
      events.map((e) => JSON.parse(e.data)).filter((m) => m.type === 'notification');
    const messages = () => notifications().map((m) => m.data.message);
    /** Waits for the last of want; what came is checked against the database at the end. */
    const waitMessages = (/** @type {string[]} */ want, /** @type {string} */ what) =>
      waitFor(() => messages().includes(want.at(-1)), { timeout: 30000, what: `${what} (up to "${want.at(-1)}")` });

    await waitFor(() => events.some((e) => e.data.includes('"type":"connected"')), { what: 'the connected message' });

    const before = ['before 1', 'before 2', 'before 3'];
    await env.insert(before.map((message) => ({ message, targetUserId: 'alice' })));
    await waitMessages(before, 'the notifications before the stop');
    const lastBefore = notifications().at(-1).data.seq;

    // The server goes away: SIGKILL (the connection just ends) or SIGTERM
    // (a closing status, then the end of the stream).
    const requestsBefore = requests.length;
    const stoppedAt = Date.now();
    await server.stop(signal);
    // The client finds it gone by itself: an error, then an attempt refused.
    await waitFor(() => errors.some((e) => e.at >= stoppedAt) && requests.slice(requestsBefore).some((r) => r.error), {
      what: 'the library to try to reconnect and be refused',
    });
    assert.equal(es.readyState, EventSource.CONNECTING, 'still trying, not closed for good');

    const down = Array.from({ length: 5 }, (_, i) => `while down ${i + 1}`);
    await env.insert(down.map((message, i) => ({ message, targetUserId: 'alice', severity: ['low', 'high'][i % 2] })));
    await env.insert([{ message: 'for bob, not alice', targetUserId: 'bob' }]);

    const restartedAt = Date.now();
    await server.start();
    const backEarly = ['back 1', 'back 2'];
    await env.insert(backEarly.map((message) => ({ message, targetUserId: 'alice' })));
    await waitMessages([...before, ...down, ...backEarly], 'the resume after the restart');

    // Live again, published over HTTP as a service would.
    const live = ['live 1', 'live 2'];
    for (const message of live) {
      const res = await fetch(server.url + '/api/notifications', {
        method: 'POST',
        headers: { Authorization: `Bearer ${publisher}`, 'Content-Type': 'application/json' },
        body: JSON.stringify({ targetUserId: 'alice', module: 'e2e', actionType: 'live', message, severity: 'medium' }),
      });
      assert.equal(res.status, 201, await res.text());
    }
    // A last one: anything sent twice would have come before it.
    const all = [...before, ...down, ...backEarly, ...live, 'last'];
    await env.insert([{ message: 'last', targetUserId: 'alice' }]);
    await waitMessages(all, 'every notification');

    // Every notification once, in seq order, nothing foreign: against the database.
    const rows = (await env.sql(`SELECT id, seq, message FROM notify.notifications WHERE target_user_id = 'alice' ORDER BY seq`))
      .trim()
      .split('\n')
      .map((l) => l.split('|'))
      .map(([id, seq, message]) => ({ id, seq: Number(seq), message }));
    assert.deepEqual(rows.map((r) => r.message), all, 'the database holds what was sent, in this order');
    const got = notifications();
    assert.deepEqual(
      got.map((m) => ({ id: m.notificationId, seq: m.data.seq, message: m.data.message })),
      rows,
      'every notification for alice exactly once, in seq order, and nothing else',
    );
    // The library's lastEventId is the seq, and only notifications carry one.
    const withId = events.filter((e) => e.data.includes('"type":"notification"'));
    assert.deepEqual(withId.map((e) => Number(e.lastEventId)), rows.map((r) => r.seq), 'each notification event carries its seq as its id');

    // The reconnect was the library's own, with Last-Event-ID: the request
    // that opened the stream after the restart resumed from the last seq
    // received before the stop.
    const resumed = requests.find((r) => r.at >= restartedAt && r.status === 200);
    assert.ok(resumed, 'a request after the restart opened the stream: ' + JSON.stringify(requests.slice(requestsBefore)));
    assert.equal(resumed.lastEventId, String(lastBefore), 'resumed with Last-Event-ID = the last seq seen before the stop');
    assert.equal(requests.filter((r) => r.status === 200).length, 2, 'one stream before the stop, one after the restart');
    assert.equal(opens, 2, 'the library opened the stream twice');

    // The retry: hint rides on an event with data: the library dispatched no
    // empty message, and every message is one of the stream's JSON messages.
    for (const e of events) {
      assert.notEqual(e.data, '', 'no empty message event');
      assert.match(JSON.parse(e.data).type, /^(connected|notification|heartbeat|status)$/, e.data);
    }
    assert.equal(events.filter((e) => JSON.parse(e.data).type === 'connected').length, 2, 'a connected message per stream');
    if (signal === 'SIGTERM') {
      assert.ok(
        events.some((e) => e.data.includes('"closing":"shutdown"')),
        'a shutdown tells the stream why it ends',
      );
    }
    // While the server was down the library tried again at the interval the
    // last retry: field set (EventSource has no backoff of its own): never
    // a busy loop, even after the shutdown's "come back at once".
    const refused = requests.slice(requestsBefore).filter((r) => r.error);
    const gaps = refused.slice(1).map((r, i) => r.at - refused[i].at);
    t.diagnostic(`${signal}: down ${restartedAt - stoppedAt} ms, ${refused.length} refused attempts, gaps ${gaps.join(', ')} ms`);
    assert.ok(
      gaps.every((g) => g >= MIN_RETRY_MS - 5),
      `attempts while the server was down came at least ${MIN_RETRY_MS} ms apart: ${gaps.join(', ')} ms`,
    );
  });
}
