// Test doubles for the browser APIs the client uses: a fake clock with
// timers, EventSource, Web Locks, BroadcastChannel, window and document.
// Several "tabs" of one fake browser share locks and channels.

/** Lets pending promise callbacks and fake channel deliveries run. */
export function settle() {
  return new Promise((resolve) => setImmediate(resolve));
}

export class FakeClock {
  constructor(start = 1_700_000_000_000) {
    this.t = start;
    this.nextId = 1;
    /** @type {Map<number, {at: number, fn: () => void, ms: number}>} */
    this.timers = new Map();
    this.now = () => this.t;
    this.setTimeout = (/** @type {() => void} */ fn, /** @type {number} */ ms) => {
      const id = this.nextId++;
      const d = Math.max(0, Number(ms) || 0);
      this.timers.set(id, { at: this.t + d, fn, ms: d });
      return id;
    };
    this.clearTimeout = (/** @type {number} */ id) => {
      this.timers.delete(id);
    };
  }

  /** Moves time forward, firing due timers in order. */
  advance(ms) {
    const end = this.t + ms;
    for (;;) {
      let next = null;
      for (const [id, t] of this.timers) {
        if (t.at <= end && (next === null || t.at < next[1].at || (t.at === next[1].at && id < next[0]))) next = [id, t];
      }
      if (next === null) break;
      this.timers.delete(next[0]);
      this.t = next[1].at;
      next[1].fn();
    }
    this.t = end;
  }

  /** The delays (ms from now) of pending timers, soonest first. */
  pending() {
    return [...this.timers.values()].map((t) => t.at - this.t).sort((a, b) => a - b);
  }
}

/** A fresh EventSource class recording its instances. */
export function fakeEventSource() {
  class FakeEventSource {
    static CONNECTING = 0;
    static OPEN = 1;
    static CLOSED = 2;
    /** @type {FakeEventSource[]} */
    static instances = [];

    static get open() {
      return FakeEventSource.instances.filter((e) => !e.closed);
    }

    static get last() {
      return FakeEventSource.instances[FakeEventSource.instances.length - 1];
    }

    constructor(url, init = {}) {
      this.url = url;
      this.withCredentials = Boolean(init.withCredentials);
      this.readyState = 0;
      this.closed = false;
      this.lastEventId = '';
      this.onopen = null;
      this.onmessage = null;
      this.onerror = null;
      FakeEventSource.instances.push(this);
    }

    close() {
      this.readyState = 2;
      this.closed = true;
    }

    // ---- test controls ----
    open() {
      this.readyState = 1;
      this.onopen?.({ type: 'open' });
      return this;
    }

    /** Delivers one message; `id` sets the SSE event id (which then persists, as in browsers). */
    send(message, id) {
      if (id !== undefined) this.lastEventId = String(id);
      const data = typeof message === 'string' ? message : JSON.stringify(message);
      this.onmessage?.({ type: 'message', data, lastEventId: this.lastEventId });
      return this;
    }

    /** Network loss (the browser would retry) or, with gaveUp, a refused answer. */
    fail({ gaveUp = false } = {}) {
      this.readyState = gaveUp ? 2 : 0;
      this.onerror?.({ type: 'error' });
      return this;
    }
  }
  return FakeEventSource;
}

// ---- messages as the server sends them ----

export function connected({ heartbeatInterval = 15000, connectionId = 7, userId = 'alice', roles = ['USER'], resumeFrom = null, unreadCount, hasMore } = {}) {
  const data = { connectionId, roles, resumeFrom, heartbeatInterval };
  if (unreadCount !== undefined) Object.assign(data, { unreadCount, hasMore: Boolean(hasMore) });
  return {
    type: 'connected',
    userId,
    userRole: roles[0],
    timestamp: 1_700_000_000_000,
    data,
  };
}

export function notification(seq, { id = `n-${seq}`, message = `message ${seq}`, severity = 'medium' } = {}) {
  return {
    type: 'notification',
    notificationId: id,
    timestamp: 1_700_000_000_000 + seq,
    data: {
      id,
      seq,
      message,
      severity,
      module: null,
      actionType: null,
      details: null,
      data: {},
      targetUserId: 'alice',
      targetRoles: null,
      createdAt: '2024-01-01T00:00:00Z',
    },
  };
}

export function heartbeat() {
  return { type: 'heartbeat', timestamp: 1_700_000_000_000 };
}

export function status(data) {
  return { type: 'status', timestamp: 1_700_000_000_000, data };
}

/** Sends notification `seq` with its SSE id. */
export function sendNotification(es, seq, opts) {
  return es.send(notification(seq, opts), seq);
}

// ---- window / document ----

export class FakeWindow extends EventTarget {
  emit(type, props = {}) {
    const ev = new Event(type);
    Object.assign(ev, props);
    this.dispatchEvent(ev);
  }

  listenerCount = 0;

  addEventListener(type, listener, opts) {
    this.listenerCount++;
    super.addEventListener(type, listener, opts);
  }

  removeEventListener(type, listener, opts) {
    this.listenerCount--;
    super.removeEventListener(type, listener, opts);
  }
}

export class FakeDocument extends FakeWindow {
  visibilityState = 'visible';

  setVisibility(state) {
    this.visibilityState = state;
    this.emit('visibilitychange');
  }
}

// ---- a browser with tabs: Web Locks and BroadcastChannel ----

function abortError(message) {
  const e = new Error(message);
  e.name = 'AbortError';
  return e;
}

export class FakeBrowser {
  constructor() {
    /** @type {Map<string, any>} lock name -> holder */
    this.held = new Map();
    /** @type {Map<string, any[]>} lock name -> waiting requests */
    this.queues = new Map();
    /** @type {Set<any>} */
    this.channels = new Set();
    this.nextTab = 1;
    this.requests = [];
  }

  /** A tab: its own locks view, BroadcastChannel class, window, document, navigator. */
  tab() {
    const browser = this;
    const tab = { id: this.nextTab++, alive: true, frozen: false };
    tab.locks = {
      request(name, options, callback) {
        if (typeof options === 'function') {
          callback = options;
          options = {};
        }
        browser.requests.push({ tab: tab.id, name, options });
        return browser.request(tab, name, options, callback);
      },
    };
    tab.BroadcastChannel = class {
      constructor(name) {
        this.name = name;
        this.tab = tab;
        this.closed = false;
        this.onmessage = null;
        browser.channels.add(this);
      }
      postMessage(message) {
        if (this.closed) throw new Error('InvalidStateError: channel closed');
        if (tab.frozen || !tab.alive) return;
        const data = structuredClone(message);
        for (const other of browser.channels) {
          if (other === this || other.name !== this.name || other.closed) continue;
          queueMicrotask(() => {
            if (other.closed || other.tab.frozen || !other.tab.alive) return;
            other.onmessage?.({ data });
          });
        }
      }
      close() {
        this.closed = true;
        browser.channels.delete(this);
      }
    };
    tab.window = new FakeWindow();
    tab.document = new FakeDocument();
    tab.navigator = { onLine: true, locks: tab.locks };
    /** The tab disappears without running any code: its locks are released, its channels closed. */
    tab.kill = () => {
      tab.alive = false;
      for (const ch of [...browser.channels]) if (ch.tab === tab) ch.close();
      for (const [name, q] of browser.queues) browser.queues.set(name, q.filter((r) => r.tab !== tab));
      for (const [name, h] of [...browser.held]) {
        if (h.tab === tab) {
          browser.held.delete(name);
          browser.pump(name);
        }
      }
    };
    /** The tab stops running (frozen) but keeps its locks. */
    tab.freeze = () => {
      tab.frozen = true;
    };
    tab.unfreeze = () => {
      tab.frozen = false;
    };
    return tab;
  }

  request(tab, name, options, callback) {
    return new Promise((resolve, reject) => {
      const req = { tab, callback, resolve, reject, done: false };
      if (options.steal && options.signal) {
        reject(new Error('NotSupportedError: steal with signal'));
        return;
      }
      if (options.signal) {
        if (options.signal.aborted) {
          reject(abortError('aborted'));
          return;
        }
        options.signal.addEventListener('abort', () => {
          const q = this.queues.get(name) || [];
          const i = q.indexOf(req);
          if (i >= 0) {
            q.splice(i, 1);
            req.done = true;
            reject(abortError('the request was aborted'));
          }
        });
      }
      if (options.steal) {
        const holder = this.held.get(name);
        if (holder) {
          this.held.delete(name);
          if (!holder.done) {
            holder.done = true;
            holder.reject(abortError('the lock was stolen'));
          }
        }
        this.grant(name, req);
        return;
      }
      if (!this.queues.has(name)) this.queues.set(name, []);
      this.queues.get(name).push(req);
      this.pump(name);
    });
  }

  pump(name) {
    if (this.held.has(name)) return;
    const q = this.queues.get(name) || [];
    const req = q.shift();
    if (req) this.grant(name, req);
  }

  grant(name, req) {
    this.held.set(name, req);
    queueMicrotask(async () => {
      let result;
      let error;
      let failed = false;
      try {
        result = await req.callback({ name, mode: 'exclusive' });
      } catch (e) {
        failed = true;
        error = e;
      }
      if (this.held.get(name) === req) {
        this.held.delete(name);
        this.pump(name);
      }
      if (!req.done) {
        req.done = true;
        if (failed) req.reject(error);
        else req.resolve(result);
      }
    });
  }

  holder(name) {
    const h = this.held.get(name);
    return h ? h.tab.id : null;
  }
}

// ---- fetch ----

/**
 * A fake fetch recording every call. `route(url, init)` returns the answer:
 * {status, json} (json: a value, or undefined for no body), or throws (a
 * network failure). Default: 204 for POST, {} otherwise.
 */
export function fakeFetch(route = () => undefined) {
  const calls = [];
  const fetch = async (url, init = {}) => {
    const call = { url, method: init.method ?? 'GET', credentials: init.credentials, headers: { ...(init.headers ?? {}) } };
    if (init.body !== undefined) call.body = JSON.parse(init.body);
    calls.push(call);
    const answer = (await route(url, init, call)) ?? (call.method === 'GET' || call.method === 'PUT' ? { status: 200, json: {} } : { status: 204 });
    const status = answer.status ?? 200;
    return {
      ok: status >= 200 && status < 300,
      status,
      statusText: answer.statusText ?? '',
      async json() {
        if (answer.json === undefined) throw new SyntaxError('Unexpected end of JSON input');
        return structuredClone(answer.json);
      },
    };
  };
  fetch.calls = calls;
  return fetch;
}
