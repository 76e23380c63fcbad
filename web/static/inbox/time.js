// Times the inbox shows and asks for: an item's age ("5 min ago") and the
// snooze menu's choices, computed in the browser's time zone from an
// injected `now` so the tests can pin them (web/test/inbox-state.test.js).

/**
 * The snooze menu: one hour from now, tomorrow at 9:00 and next Monday at
 * 9:00 (a week from today's Monday), local time.
 * @param {number} now ms since the epoch
 * @returns {{id: 'hour' | 'tomorrow' | 'week', label: string, until: Date}[]}
 */
export function snoozeChoices(now) {
  const hour = new Date(now + 60 * 60 * 1000);
  const tomorrow = new Date(now);
  tomorrow.setDate(tomorrow.getDate() + 1);
  tomorrow.setHours(9, 0, 0, 0);
  const week = new Date(now);
  const toMonday = ((8 - week.getDay()) % 7) || 7; // Sunday 0 → 1 day, Monday 1 → 7 days
  week.setDate(week.getDate() + toMonday);
  week.setHours(9, 0, 0, 0);
  return [
    { id: 'hour', label: '1 hour', until: hour },
    { id: 'tomorrow', label: 'Tomorrow, 9:00', until: tomorrow },
    { id: 'week', label: 'Next week (Mon 9:00)', until: week },
  ];
}

/**
 * How long ago `then` was, in the page's language: "now", "5 min. ago",
 * "3 hr. ago", "yesterday", or a date past a week.
 * @param {string | number} then an RFC 3339 time or ms since the epoch
 * @param {number} now
 * @param {string} [locale]
 */
export function relativeTime(then, now, locale) {
  const t = typeof then === 'number' ? then : Date.parse(then);
  if (!Number.isFinite(t)) return '';
  const s = Math.round((now - t) / 1000);
  const rtf = new Intl.RelativeTimeFormat(locale, { numeric: 'auto', style: 'short' });
  if (s < 45) return rtf.format(0, 'second');
  if (s < 3600) return rtf.format(-Math.max(1, Math.round(s / 60)), 'minute');
  if (s < 86400) return rtf.format(-Math.round(s / 3600), 'hour');
  if (s < 7 * 86400) return rtf.format(-Math.round(s / 86400), 'day');
  return new Intl.DateTimeFormat(locale, { dateStyle: 'medium' }).format(t);
}
