// The set-up the client's tests share: a client wired to the fakes of
// fakes.js, alone (its own stream) or as a tab of a fake browser, with every
// callback recorded. Each test file used to build these itself.

import { createNotificationClient } from '../static/notify-client.js';
import { FakeBrowser, FakeClock, FakeDocument, FakeWindow, fakeEventSource, fakeFetch, settle } from './fakes.js';

/** The lock (and channel) name of a client on the default URL. */
export const LOCK = 'notifyd:/api/notifications/ws';

/**
 * The options that make a client run on fake time and a fake EventSource.
 * @param {FakeClock} clock
 * @param {ReturnType<typeof fakeEventSource>} ES
 */
export function fakeTimeOptions(clock, ES) {
  return { EventSource: ES, setTimeout: clock.setTimeout, clearTimeout: clock.clearTimeout, now: clock.now };
}

/** Callbacks that record what the client reported, and the record. */
export function recorder() {
  const calls = { notifications: [], connected: [], errors: [], statuses: [] };
  const callbacks = {
    onNotification: (m) => calls.notifications.push(m),
    onConnected: (m) => calls.connected.push(m),
    onError: (e) => calls.errors.push(e),
    onStatus: (m) => calls.statuses.push(m),
  };
  return { calls, callbacks };
}

/** The seqs of the notifications a recorder saw, in order. */
export const seqs = (calls) => calls.notifications.map((m) => m.data.seq);

/** A client's unread count as [count, hasMore]. */
export const unread = (c) => [c.unreadCount, c.unreadHasMore];

/**
 * A client with its own stream (no tab sharing) and every dependency faked:
 * clock, EventSource, window, document, navigator, fetch (options.fetch, even
 * null, replaces the fake). Returns it with its fakes and the calls it made.
 */
export function singleClient(options = {}) {
  const clock = new FakeClock();
  const ES = fakeEventSource();
  const window = new FakeWindow();
  const document = new FakeDocument();
  const navigator = { onLine: true };
  const fetch = 'fetch' in options ? options.fetch : fakeFetch();
  const { calls, callbacks } = recorder();
  const client = createNotificationClient({
    shareAcrossTabs: false,
    ...fakeTimeOptions(clock, ES),
    random: () => 0.5,
    window,
    document,
    navigator,
    ...callbacks,
    ...options,
    fetch,
  });
  return { client, clock, ES, window, document, navigator, calls, fetch };
}

/**
 * A client running in an existing tab of a fake browser, with its own
 * EventSource class and a fake fetch unless options.fetch is given.
 */
export function clientInTab(tab, clock, options = {}) {
  const ES = fakeEventSource();
  const fetch = options.fetch ?? fakeFetch();
  const { calls, callbacks } = recorder();
  const client = createNotificationClient({
    lockName: LOCK,
    ...fakeTimeOptions(clock, ES),
    random: () => 0.5,
    window: tab.window,
    document: tab.document,
    navigator: tab.navigator,
    BroadcastChannel: tab.BroadcastChannel,
    ...callbacks,
    ...options,
    fetch,
  });
  return { tab, ES, client, calls, fetch };
}

/** Opens a new tab of `browser` running a client (see clientInTab). */
export function openTab(browser, clock, options = {}) {
  return clientInTab(browser.tab(), clock, options);
}

/**
 * A fake browser and its clock; open(options) opens a tab running a client
 * and lets it settle (join the election, or lead).
 */
export function fakeBrowser() {
  const browser = new FakeBrowser();
  const clock = new FakeClock();
  const open = async (options = {}) => {
    const tab = openTab(browser, clock, options);
    await settle();
    return tab;
  };
  return { browser, clock, open };
}

/**
 * A fake browser and clock with two tabs opened one after the other, each
 * settled: `a` leads, `b` follows. leader/follower: each tab's options.
 */
export async function twoTabs({ leader = {}, follower = {} } = {}) {
  const { browser, clock, open } = fakeBrowser();
  const a = await open(leader);
  const b = await open(follower);
  return { browser, clock, a, b };
}
