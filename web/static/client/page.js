// The page's signals the stream reacts to: online/offline, and the page
// becoming visible again (a tab switch, or a page restored from the
// back/forward cache), after which a stream that went down while the page
// was hidden or frozen should come back at once instead of after its backoff.
// One module registers and removes the listeners so close() leaves none behind.

/** @typedef {import('../notify-client.js').EventTargetLike} EventTargetLike */
/** @typedef {import('../notify-client.js').DocumentLike} DocumentLike */

/**
 * Listens to the page; returns the function that stops listening.
 * @param {{
 *   window: EventTargetLike | null,
 *   document: DocumentLike | null,
 *   online: () => void,
 *   offline: () => void,
 *   visible: () => void,
 * }} options
 * @returns {() => void}
 */
export function watchPage({ window: win, document: doc, online, offline, visible }) {
  const onOnline = () => online();
  const onOffline = () => offline();
  const onVisibility = () => {
    if (doc && doc.visibilityState !== undefined && doc.visibilityState !== 'visible') return;
    visible();
  };
  const onPageShow = (/** @type {any} */ ev) => {
    if (ev && ev.persisted) onVisibility();
  };
  if (win) {
    win.addEventListener('online', onOnline);
    win.addEventListener('offline', onOffline);
    win.addEventListener('pageshow', onPageShow);
  }
  if (doc) doc.addEventListener('visibilitychange', onVisibility);
  return () => {
    if (win) {
      win.removeEventListener('online', onOnline);
      win.removeEventListener('offline', onOffline);
      win.removeEventListener('pageshow', onPageShow);
    }
    if (doc) doc.removeEventListener('visibilitychange', onVisibility);
  };
}
