// <NotifyInbox>: the <notify-inbox> element as a React component.
//
// A thin wrapper: props become the element's attributes, its events become
// callbacks, and `client` (a client the app already has, e.g. the hook's
// page-level one) is handed to the element before it starts. React is the
// app's (a peer dependency); as with the hook there is no bundler, so this
// module never imports 'react':
//
//   import * as React from 'react';
//   import { createNotifyInbox } from '/static/notify-inbox-react.js';
//   const NotifyInbox = createNotifyInbox(React);
//   <NotifyInbox theme="dark" onAction={(d, ev) => { ev.preventDefault(); route(d.action.url); }} />
//
//   // or with React as a global (UMD build, window.React):
//   import { NotifyInbox } from '/static/notify-inbox-react.js';
//
// Callbacks are read at event time (changing them re-attaches nothing), and
// each gets the event's detail and the event (notify-action is cancelable).
// Types: notify-inbox-react.d.ts.

import './notify-inbox.js';

/** @typedef {import('./notify-inbox-react.js').NotifyInboxProps} NotifyInboxProps */
/** @typedef {import('./notify-inbox-react.js').ReactLike} ReactLike */
/** @typedef {import('./notify-inbox.js').NotifyInboxElement} NotifyInboxElement */

/** The element's events and the props that hear them. */
export const EVENT_PROPS = Object.freeze({
  'notify-open': 'onOpen',
  'notify-close': 'onClose',
  'notify-notification': 'onNotification',
  'notify-action': 'onAction',
  'notify-error': 'onError',
  'notify-unread': 'onUnreadChange',
});

/**
 * The element's attributes for these props (null ones left out, booleans as
 * present or absent).
 * @param {NotifyInboxProps} p
 * @returns {Record<string, string | undefined>}
 */
export function inboxAttributes(p) {
  return {
    url: p.url ?? undefined,
    api: p.api ?? undefined,
    'with-credentials': p.withCredentials ? '' : undefined,
    theme: p.theme ?? undefined,
    align: p.align ?? undefined,
    'page-size': p.pageSize === undefined ? undefined : String(p.pageSize),
    'no-toasts': p.toasts === false ? '' : undefined,
  };
}

/** @type {WeakMap<object, (props: NotifyInboxProps) => unknown>} */
const components = new WeakMap();

/**
 * The component bound to the given React (cached per React object).
 * @param {ReactLike} React
 */
export function createNotifyInbox(React) {
  const cached = components.get(React);
  if (cached) return cached;
  const { createElement, useRef } = React;
  // Before the element's first microtask, so `client` is set when it starts.
  const useEarlyEffect = React.useLayoutEffect ?? React.useEffect;

  /** @param {NotifyInboxProps} props */
  function NotifyInbox(props) {
    const ref = useRef(/** @type {NotifyInboxElement | null} */ (null));
    const latest = useRef(props);
    latest.current = props;

    useEarlyEffect(() => {
      const el = ref.current;
      if (!el) return undefined;
      const off = Object.entries(EVENT_PROPS).map(([type, prop]) => {
        /** @param {Event} ev */
        const listener = (ev) => {
          const fn = /** @type {any} */ (latest.current)[prop];
          if (typeof fn === 'function') fn(/** @type {CustomEvent} */ (ev).detail, ev);
        };
        el.addEventListener(type, listener);
        return () => el.removeEventListener(type, listener);
      });
      return () => off.forEach((f) => f());
    }, []);

    useEarlyEffect(() => {
      const el = ref.current;
      if (el && props.client && el.client !== props.client) el.client = props.client;
    }, [props.client]);

    return createElement('notify-inbox', {
      ref,
      id: props.id,
      className: props.className,
      style: props.style,
      ...inboxAttributes(props),
    });
  }

  components.set(React, NotifyInbox);
  return NotifyInbox;
}

/**
 * The component bound to `globalThis.React` (looked up at render time).
 * @param {NotifyInboxProps} props
 */
export function NotifyInbox(props) {
  const React = /** @type {{React?: ReactLike}} */ (globalThis).React;
  if (!React) throw new Error('NotifyInbox: globalThis.React is not set; use createNotifyInbox(React) with the app\'s React');
  return createNotifyInbox(React)(props);
}

export default NotifyInbox;
