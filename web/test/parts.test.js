// The client's parts on their own, through the seams the split gave them:
// the inbox calls (static/client/inbox-api.js), the page signals
// (static/client/page.js) and the transport (static/client/transport.js).
// The client-level tests (client, inbox, leader) cover them wired together.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { createInboxApi, inboxApiBase } from '../static/client/inbox-api.js';
import { watchPage } from '../static/client/page.js';
import { StreamTransport } from '../static/client/transport.js';
import { FakeClock, FakeDocument, FakeWindow, fakeEventSource, fakeFetch } from './fakes.js';
import { fakeTimeOptions } from './setup.js';

test('inbox api: the base is apiUrl without trailing slashes, else the stream URL without /ws', () => {
  assert.equal(inboxApiBase('/api/notifications/ws', undefined), '/api/notifications');
  assert.equal(inboxApiBase('/api/notifications/ws?x=1', ''), '/api/notifications');
  assert.equal(inboxApiBase('/api/notifications/ws', '/inbox//'), '/inbox');
});

test('inbox api: markAllRead reads the last event id when called, not when created', async () => {
  const fetch = fakeFetch();
  let last = null;
  const api = createInboxApi({ apiBase: '/inbox', withCredentials: false, fetch, lastEventId: () => last });
  last = '41';
  assert.equal(await api.markAllRead(), 41);
  assert.deepEqual(fetch.calls, [
    {
      url: '/inbox/read-all',
      method: 'POST',
      credentials: 'same-origin',
      headers: { Accept: 'application/json', 'Content-Type': 'application/json' },
      body: { upTo: 41 },
    },
  ]);
});

test('page signals: online, offline, visible (not while hidden, and on a restored page); stop removes every listener', () => {
  const window = new FakeWindow();
  const document = new FakeDocument();
  const seen = [];
  const stop = watchPage({
    window,
    document,
    online: () => seen.push('online'),
    offline: () => seen.push('offline'),
    visible: () => seen.push('visible'),
  });
  window.emit('offline');
  window.emit('online');
  document.setVisibility('hidden');
  document.setVisibility('visible');
  window.emit('pageshow', { persisted: false });
  window.emit('pageshow', { persisted: true });
  assert.deepEqual(seen, ['offline', 'online', 'visible', 'visible']);
  assert.equal(window.listenerCount + document.listenerCount, 4);
  stop();
  assert.equal(window.listenerCount + document.listenerCount, 0);
  window.emit('online');
  assert.deepEqual(seen.length, 4);
  assert.doesNotThrow(() => watchPage({ window: null, document: null, online() {}, offline() {}, visible() {} })());
});

/** A transport on fake time whose hooks record what it reports. */
function transportSetup({ mayConnect = true, online = true } = {}) {
  const clock = new FakeClock();
  const ES = fakeEventSource();
  const events = [];
  const allowed = { value: mayConnect };
  const transport = new StreamTransport({
    url: '/s',
    withCredentials: true,
    ...fakeTimeOptions(clock, ES),
    random: () => 0.5,
    initialMs: 1000,
    maxMs: 30000,
    resetAfterMs: 60000,
    online,
    resumeFrom: () => '7',
    watchdogTimeoutMs: () => 30000,
    hooks: {
      mayConnect: () => allowed.value,
      closed: () => events.push('closed'),
      opened: () => events.push('opened'),
      healthy: () => events.push('healthy'),
      message: (data, id) => events.push(['message', data, id]),
      retrying: (attempt) => events.push(['retrying', attempt]),
      failed: (kind, message, details) => events.push(['failed', kind, message, details.retryInMs]),
      closing: () => events.push('closing'),
    },
  });
  return { clock, ES, events, allowed, transport };
}

test('transport: resumes from the given id, reports open, messages, failure then retry, and the healthy reset', () => {
  const { clock, ES, events, transport } = transportSetup();
  transport.connect();
  assert.equal(ES.last.url, '/s?lastEventId=7');
  ES.last.open().send('x', 8);
  ES.last.fail();
  assert.deepEqual(events, ['closed', 'opened', ['message', 'x', '8'], 'closed', ['retrying', 1], ['failed', 'network', 'the stream was interrupted', 500]]);
  assert.equal(transport.attempt, 1);
  clock.advance(500);
  assert.equal(ES.instances.length, 2, 'retried after the backoff delay');
  ES.last.open();
  for (let t = 0; t < 60000; t += 10000) {
    clock.advance(10000);
    ES.last.send('heartbeat');
  }
  assert.equal(ES.instances.length, 2, 'messages keep the watchdog quiet');
  assert.ok(events.includes('healthy'));
  assert.equal(transport.attempt, 0);
});

test('transport: nothing opens or retries unless the client may connect; offline waits maxMs', () => {
  const idle = transportSetup({ mayConnect: false });
  idle.transport.connect();
  assert.equal(idle.ES.instances.length, 0);

  const { clock, ES, events, transport } = transportSetup({ online: false });
  transport.connect();
  ES.last.fail({ gaveUp: true });
  assert.deepEqual(events.at(-1), ['failed', 'rejected', 'the server refused the stream (not signed in, unavailable, or not an event stream) (offline)', 30000]);
  clock.advance(29999);
  assert.equal(ES.instances.length, 1);
  clock.advance(1);
  assert.equal(ES.instances.length, 2);
});

test('transport: the server closing the stream reconnects after the delay it asked for', () => {
  const { clock, ES, events, transport } = transportSetup();
  transport.connect();
  ES.last.open();
  transport.reconnectAfterClosing(2500);
  assert.equal(transport.es, null);
  assert.equal(events.at(-1), 'closing');
  assert.equal(ES.last.closed, true);
  clock.advance(2499);
  assert.equal(ES.instances.length, 1);
  clock.advance(1);
  assert.equal(ES.instances.length, 2);
});
