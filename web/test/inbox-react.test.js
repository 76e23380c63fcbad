// The React wrapper of <notify-inbox> (static/notify-inbox-react.js): props
// become the element's attributes, the element's events reach the current
// callbacks, and a given client is handed to the element. Rendered with
// react-test-renderer on a stand-in element (createNodeMock); the element
// itself runs in the browser tests (e2e/inbox-element.test.js).
import { test } from 'node:test';
import assert from 'node:assert/strict';

import React from 'react';
import TestRenderer from 'react-test-renderer';

import NotifyInboxDefault, { EVENT_PROPS, NotifyInbox, createNotifyInbox, inboxAttributes } from '../static/notify-inbox-react.js';

/** A stand-in for the element: an EventTarget with a `client` property. */
class FakeInbox extends EventTarget {
  constructor() {
    super();
    this.client = null;
    this.clientSets = 0;
  }
}

function render(element) {
  const node = new FakeInbox();
  let client = null;
  Object.defineProperty(node, 'client', {
    get: () => client,
    set: (c) => {
      client = c;
      node.clientSets++;
    },
  });
  let renderer;
  TestRenderer.act(() => {
    renderer = TestRenderer.create(element, { createNodeMock: () => node });
  });
  return { renderer, node };
}

const fire = (node, type, detail, cancelable = false) => {
  const ev = new CustomEvent(type, { detail, cancelable });
  node.dispatchEvent(ev);
  return ev;
};

test('NotifyInbox: props become attributes (booleans present or absent)', () => {
  assert.deepEqual(inboxAttributes({}), {
    url: undefined, api: undefined, 'with-credentials': undefined, theme: undefined, align: undefined, 'page-size': undefined, 'no-toasts': undefined,
  });
  assert.deepEqual(inboxAttributes({ url: '/s/ws', api: '/s', withCredentials: true, theme: 'dark', align: 'start', pageSize: 50, toasts: false }), {
    url: '/s/ws', api: '/s', 'with-credentials': '', theme: 'dark', align: 'start', 'page-size': '50', 'no-toasts': '',
  });
  const NotifyInboxFor = createNotifyInbox(React);
  assert.equal(createNotifyInbox(React), NotifyInboxFor, 'one component per React');
  const { renderer } = render(React.createElement(NotifyInboxFor, { theme: 'dark', withCredentials: true, className: 'bell', pageSize: 10 }));
  const el = renderer.root.findByType('notify-inbox');
  assert.equal(el.props.theme, 'dark');
  assert.equal(el.props['with-credentials'], '');
  assert.equal(el.props['page-size'], '10');
  assert.equal(el.props.className, 'bell');
  assert.equal(el.props['no-toasts'], undefined);
  TestRenderer.act(() => renderer.unmount());
});

test('NotifyInbox: events reach the latest callbacks, with the detail and the event; unmount detaches them', () => {
  const NotifyInboxFor = createNotifyInbox(React);
  const heard = [];
  const first = { onUnreadChange: (d) => heard.push(['first', d.count]) };
  const { renderer, node } = render(React.createElement(NotifyInboxFor, first));
  fire(node, 'notify-unread', { count: 3 });
  TestRenderer.act(() => {
    renderer.update(React.createElement(NotifyInboxFor, {
      onUnreadChange: (d) => heard.push(['second', d.count]),
      onAction: (d, ev) => {
        heard.push(['action', d.action.id]);
        ev.preventDefault();
      },
      onOpen: () => heard.push(['open']),
    }));
  });
  fire(node, 'notify-unread', { count: 4 });
  fire(node, 'notify-open', {});
  const ev = fire(node, 'notify-action', { action: { id: 'approve' } }, true);
  assert.equal(ev.defaultPrevented, true, 'the callback can keep the element from following the url');
  fire(node, 'notify-close', {}); // no callback: nothing happens
  assert.deepEqual(heard, [['first', 3], ['second', 4], ['open'], ['action', 'approve']]);
  assert.deepEqual(Object.values(EVENT_PROPS).sort(), ['onAction', 'onClose', 'onError', 'onNotification', 'onOpen', 'onUnreadChange']);
  TestRenderer.act(() => renderer.unmount());
  fire(node, 'notify-unread', { count: 5 });
  assert.equal(heard.length, 4, 'no callback after unmount');
});

test('NotifyInbox: a given client is handed to the element once', () => {
  const NotifyInboxFor = createNotifyInbox(React);
  const client = { name: 'the app’s client' };
  const { renderer, node } = render(React.createElement(NotifyInboxFor, { client }));
  assert.equal(node.client, client);
  TestRenderer.act(() => renderer.update(React.createElement(NotifyInboxFor, { client, theme: 'dark' })));
  assert.equal(node.clientSets, 1, 'a re-render with the same client does not restart the element');
  TestRenderer.act(() => renderer.unmount());
});

test('NotifyInbox: the global-React export needs globalThis.React', () => {
  assert.equal(NotifyInboxDefault, NotifyInbox);
  assert.throws(() => NotifyInbox({}), /globalThis\.React is not set/);
  globalThis.React = React;
  try {
    const { renderer } = render(React.createElement(NotifyInbox, { theme: 'light' }));
    assert.equal(renderer.root.findByType('notify-inbox').props.theme, 'light');
    TestRenderer.act(() => renderer.unmount());
  } finally {
    delete globalThis.React;
  }
});
