// The React hook: with a minimal fake React (hooks without
// useSyncExternalStore, StrictMode's mount → unmount → mount simulated) and
// with the real React 18 in StrictMode through react-test-renderer.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import React from 'react';
import TestRenderer from 'react-test-renderer';

import useNotificationSSEDefault, { createUseNotificationSSE, useNotificationSSE } from '../static/use-notification-sse.js';
import { FakeBrowser, FakeClock, connected, fakeEventSource, fakeFetch, sendNotification, settle, status } from './fakes.js';
import { fakeTimeOptions } from './setup.js';

const { act } = TestRenderer;

/**
 * A tiny React: one component, hooks by call order, effects after each
 * render, state updates re-render. `strict` replays StrictMode's first
 * commit: effects run, are cleaned up, and run again.
 */
function createFakeReact() {
  let current = null;
  const React = {
    useRef(initial) {
      return current.slot(() => ({ current: initial }));
    },
    useState(initial) {
      const inst = current;
      const slot = current.slot(() => ({ value: typeof initial === 'function' ? initial() : initial }));
      if (!slot.set) {
        slot.set = (v) => {
          const next = typeof v === 'function' ? v(slot.value) : v;
          if (Object.is(next, slot.value)) return;
          slot.value = next;
          inst.dirty = true;
          if (!inst.busy) inst.flush();
        };
      }
      return [slot.value, slot.set];
    },
    useEffect(effect, deps) {
      const slot = current.slot(() => ({ effect: true, deps: null, cleanup: undefined, mounted: false }));
      const changed = !slot.mounted || !deps || deps.length !== slot.deps.length || deps.some((d, i) => !Object.is(d, slot.deps[i]));
      slot.next = effect;
      if (changed) {
        current.pending.push(slot);
        slot.nextDeps = deps;
      }
    },
  };

  function mount(useHook, props, { strict = false } = {}) {
    const inst = {
      slots: [],
      index: 0,
      pending: [],
      dirty: false,
      busy: false,
      unmounted: false,
      result: undefined,
      renders: 0,
      props,
      slot(init) {
        if (this.index >= this.slots.length) this.slots.push(init());
        return this.slots[this.index++];
      },
      render() {
        this.index = 0;
        this.pending = [];
        current = this;
        this.result = useHook(this.props);
        current = null;
        this.renders++;
      },
      runEffects(slots) {
        for (const s of slots) {
          if (s.cleanup) s.cleanup();
          s.cleanup = s.next() || undefined;
          s.deps = s.nextDeps;
          s.mounted = true;
        }
      },
      flush(first = false) {
        if (this.unmounted) return;
        this.busy = true;
        try {
          do {
            this.dirty = false;
            this.render();
            const effects = this.pending;
            this.runEffects(effects);
            if (first && strict) {
              // StrictMode: unmount then mount again, keeping state.
              for (const s of this.slots.filter((x) => x.effect)) {
                if (s.cleanup) s.cleanup();
                s.cleanup = undefined;
              }
              this.runEffects(this.slots.filter((x) => x.effect));
              first = false;
            }
          } while (this.dirty && !this.unmounted);
        } finally {
          this.busy = false;
        }
      },
      rerender(nextProps) {
        this.props = nextProps;
        this.flush();
      },
      unmount() {
        this.unmounted = true;
        for (const s of this.slots.filter((x) => x.effect)) if (s.cleanup) s.cleanup();
      },
    };
    inst.flush(true);
    return inst;
  }

  return { React, mount };
}

function deps(extra = {}) {
  const clock = new FakeClock();
  const ES = fakeEventSource();
  return {
    clock,
    ES,
    options: {
      shareAcrossTabs: false,
      ...fakeTimeOptions(clock, ES),
      window: null,
      document: null,
      ...extra,
    },
  };
}

test('fake React, StrictMode: mount, unmount, mount ends with exactly one open client', () => {
  const { React, mount } = createFakeReact();
  const useSSE = createUseNotificationSSE(React);
  const { ES, options } = deps();
  const c = mount((p) => useSSE(p), options, { strict: true });
  assert.equal(ES.open.length, 1, 'one open EventSource');
  assert.equal(ES.instances.length, 2, 'the first was closed by the cleanup');
  assert.equal(ES.instances[0].closed, true);
  assert.equal(c.result.isConnected, false);
  assert.equal(c.result.state, 'connecting');

  ES.last.open();
  ES.last.send(connected({ connectionId: 5 }));
  assert.equal(c.result.isConnected, true);
  assert.equal(c.result.state, 'open');
  assert.equal(c.result.connectionInfo.connectionId, 5);
  sendNotification(ES.last, 1);
  assert.equal(c.result.notifications.length, 1);
  assert.equal(c.result.lastEventId, '1');

  c.unmount();
  assert.equal(ES.open.length, 0, 'unmount closes the client');
});

test('fake React: changing callbacks does not reconnect; the latest callback is called', () => {
  const { React, mount } = createFakeReact();
  const useSSE = createUseNotificationSSE(React);
  const { ES, options } = deps();
  const seen = [];
  const c = mount((p) => useSSE(p), {
    ...options,
    backoff: { initialMs: 1000 },
    onNotification: (m) => seen.push(['first', m.data.seq]),
  });
  const es = ES.last.open();
  sendNotification(es, 1);
  for (let i = 0; i < 5; i++) {
    c.rerender({ ...options, backoff: { initialMs: 1000 }, onNotification: (m) => seen.push(['latest', m.data.seq]), onError: () => {} });
  }
  sendNotification(es, 2);
  assert.equal(ES.instances.length, 1, 'no reconnect when callbacks or equal options change identity');
  assert.deepEqual(seen, [
    ['first', 1],
    ['latest', 2],
  ]);
  const reconnect = c.result.reconnect;
  c.rerender({ ...options, backoff: { initialMs: 1000 } });
  assert.equal(c.result.reconnect, reconnect, 'reconnect is stable');
  reconnect();
  assert.equal(ES.instances.length, 2);
  assert.equal(ES.last.url, '/api/notifications/ws?lastEventId=2');
  c.unmount();
});

test('fake React: a new url re-creates the client; enabled=false closes it', () => {
  const { React, mount } = createFakeReact();
  const useSSE = createUseNotificationSSE(React);
  const { ES, options } = deps();
  const c = mount((p) => useSSE(p), options);
  c.rerender({ ...options, url: '/other/ws' });
  assert.equal(ES.instances.length, 2);
  assert.equal(ES.open.length, 1);
  assert.equal(ES.last.url, '/other/ws');
  c.rerender({ ...options, url: '/other/ws', enabled: false });
  assert.equal(ES.open.length, 0);
  assert.equal(c.result.state, 'closed');
  assert.equal(c.result.isConnected, false);
  c.unmount();
});

test('real React 18 StrictMode: one open stream, state and notifications rendered, closed on unmount', async () => {
  globalThis.IS_REACT_ACT_ENVIRONMENT = true;
  const useSSE = createUseNotificationSSE(React);
  const { ES, options } = deps();
  const received = [];
  let result;
  let renders = 0;
  function Bell({ tag }) {
    renders++;
    result = useSSE({ ...options, onNotification: (m) => received.push([tag, m.data.seq]) });
    return React.createElement('span', null, result.state);
  }
  let root;
  await act(async () => {
    root = TestRenderer.create(React.createElement(React.StrictMode, null, React.createElement(Bell, { tag: 'a' })));
  });
  assert.equal(ES.open.length, 1, 'exactly one open EventSource after StrictMode mount/unmount/mount');
  assert.equal(root.toJSON().children[0], 'connecting');

  await act(async () => {
    ES.last.open();
    ES.last.send(connected());
  });
  assert.equal(result.isConnected, true);
  assert.equal(root.toJSON().children[0], 'open');

  await act(async () => {
    sendNotification(ES.last, 1);
  });
  // New callbacks on re-render: same stream, latest callback.
  await act(async () => {
    root.update(React.createElement(React.StrictMode, null, React.createElement(Bell, { tag: 'b' })));
  });
  await act(async () => {
    sendNotification(ES.last, 2);
    sendNotification(ES.last, 2);
  });
  assert.deepEqual(received, [
    ['a', 1],
    ['b', 2],
  ]);
  assert.equal(result.notifications.length, 2);
  assert.equal(result.duplicatesSuppressed, 1);
  assert.equal(result.lastEventId, '2');
  assert.equal(ES.open.length, 1);
  assert.ok(renders > 2);

  await act(async () => {
    root.unmount();
  });
  assert.equal(ES.open.length, 0);
});

test('real React 18: unreadCount and unreadHasMore render; the inbox calls are stable and reach the server', async () => {
  globalThis.IS_REACT_ACT_ENVIRONMENT = true;
  const useSSE = createUseNotificationSSE(React);
  const fetch = fakeFetch((url) => (url.endsWith('/preferences') ? { json: { mutedModules: ['billing'] } } : undefined));
  const { ES, options } = deps({ fetch });
  /** @type {any[]} */
  const results = [];
  function Badge() {
    const r = useSSE(options);
    results.push(r);
    return React.createElement('b', null, r.unreadCount === null ? '–' : r.unreadHasMore ? r.unreadCount + '+' : String(r.unreadCount));
  }
  let root;
  await act(async () => {
    root = TestRenderer.create(React.createElement(React.StrictMode, null, React.createElement(Badge)));
  });
  assert.equal(root.toJSON().children[0], '–');
  await act(async () => {
    ES.last.open();
    ES.last.send(connected({ unreadCount: 2 }));
  });
  assert.equal(root.toJSON().children[0], '2');
  await act(async () => {
    sendNotification(ES.last, 8);
  });
  assert.equal(root.toJSON().children[0], '3');
  await act(async () => {
    ES.last.send(status({ unreadCount: 99, hasMore: true, change: { action: 'unread' } }));
  });
  assert.equal(root.toJSON().children[0], '99+');

  const first = results[0];
  const last = results.at(-1);
  for (const name of ['reconnect', 'markRead', 'markUnread', 'markAllRead', 'fetchHistory', 'fetchUnreadCount', 'getPreferences', 'setMutedModules']) {
    assert.equal(typeof last[name], 'function', name);
    assert.equal(last[name], first[name], name + ' is stable across renders');
  }
  await last.markRead('n-8');
  assert.equal(await last.markAllRead(), 8, 'default: the last event id');
  assert.deepEqual(await last.getPreferences(), { mutedModules: ['billing'] });
  assert.deepEqual(
    fetch.calls.map((c) => `${c.method} ${c.url}`),
    ['POST /api/notifications/n-8/read', 'POST /api/notifications/read-all', 'GET /api/notifications/preferences'],
  );
  await act(async () => {
    root.unmount();
  });
});

test('fake React: with enabled=false the inbox calls reject and the count is null', async () => {
  const { React, mount } = createFakeReact();
  const useSSE = createUseNotificationSSE(React);
  const { options } = deps({ fetch: fakeFetch() });
  const c = mount((p) => useSSE(p), { ...options, enabled: false });
  assert.equal(c.result.unreadCount, null);
  assert.equal(c.result.unreadHasMore, false);
  await assert.rejects(c.result.markRead('x'), /no client is running/);
  await assert.rejects(c.result.fetchHistory(), /no client is running/);
  c.unmount();
});

test('real React 18 StrictMode with tab sharing: the discarded mount never opens a stream', async () => {
  globalThis.IS_REACT_ACT_ENVIRONMENT = true;
  const useSSE = createUseNotificationSSE(React);
  const browser = new FakeBrowser();
  const tab = browser.tab();
  const { ES, options } = deps({
    shareAcrossTabs: true,
    lockName: 'notifyd:test',
    BroadcastChannel: tab.BroadcastChannel,
    navigator: tab.navigator,
    window: tab.window,
    document: tab.document,
  });
  let result;
  function Bell() {
    result = useSSE(options);
    return null;
  }
  let root;
  await act(async () => {
    root = TestRenderer.create(React.createElement(React.StrictMode, null, React.createElement(Bell)));
    await settle();
  });
  assert.equal(ES.instances.length, 1);
  assert.equal(ES.open.length, 1);
  assert.equal(result.connectionInfo.isLeader, true);
  await act(async () => {
    root.unmount();
    await settle();
  });
  assert.equal(ES.open.length, 0);
  assert.equal(browser.holder('notifyd:test'), null, 'the lock is released on unmount');
});

test('the default export uses globalThis.React', async () => {
  assert.equal(useNotificationSSEDefault, useNotificationSSE);
  const saved = globalThis.React;
  try {
    delete globalThis.React;
    assert.throws(() => useNotificationSSE({}), /createUseNotificationSSE/);
    globalThis.React = React;
    globalThis.IS_REACT_ACT_ENVIRONMENT = true;
    const { ES, options } = deps();
    let result;
    function Bell() {
      result = useNotificationSSE(options);
      return null;
    }
    let root;
    await act(async () => {
      root = TestRenderer.create(React.createElement(Bell));
    });
    assert.equal(ES.open.length, 1);
    assert.equal(result.state, 'connecting');
    await act(async () => root.unmount());
    assert.equal(ES.open.length, 0);
  } finally {
    if (saved === undefined) delete globalThis.React;
    else globalThis.React = saved;
  }
  assert.throws(() => createUseNotificationSSE(/** @type {any} */ ({})), TypeError);
});
