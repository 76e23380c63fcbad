// The <notify-inbox> element's style sheet (its shadow root's), as text.
//
// Every colour and size is a custom property with a default, so a page
// themes the element from outside (`notify-inbox { --notify-inbox-accent:
// teal }`); the element reads them through private `--_*` variables whose
// defaults change for the dark theme (theme="dark", or the browser's
// prefers-color-scheme unless theme="light"). Colours meet WCAG AA contrast
// in both themes (the e2e axe check). The bell takes the page's text colour
// (it sits in the page's header); the popover and toasts have their own.

const LIGHT = `
  --_bg: var(--notify-inbox-bg, #ffffff);
  --_fg: var(--notify-inbox-fg, #111827);
  --_muted: var(--notify-inbox-muted, #4b5563);
  --_border: var(--notify-inbox-border, #e5e7eb);
  --_hover: var(--notify-inbox-hover, #f3f4f6);
  --_unread-bg: var(--notify-inbox-unread-bg, #eff6ff);
  --_accent: var(--notify-inbox-accent, #1d4ed8);
  --_accent-fg: var(--notify-inbox-accent-fg, #ffffff);
  --_badge-bg: var(--notify-inbox-badge-bg, #dc2626);
  --_badge-fg: var(--notify-inbox-badge-fg, #ffffff);
  --_badge-seen-bg: var(--notify-inbox-badge-seen-bg, #4b5563);
  --_high: var(--notify-inbox-high, #c2410c);
  --_critical: var(--notify-inbox-critical, #b91c1c);
  --_shadow: var(--notify-inbox-shadow, 0 10px 30px rgba(17, 24, 39, 0.18), 0 2px 6px rgba(17, 24, 39, 0.08));
`;

const DARK = `
  --_bg: var(--notify-inbox-bg, #1f2937);
  --_fg: var(--notify-inbox-fg, #f9fafb);
  --_muted: var(--notify-inbox-muted, #c0c6d0);
  --_border: var(--notify-inbox-border, #374151);
  --_hover: var(--notify-inbox-hover, #2b3544);
  --_unread-bg: var(--notify-inbox-unread-bg, #1e3a5f);
  --_accent: var(--notify-inbox-accent, #93c5fd);
  --_accent-fg: var(--notify-inbox-accent-fg, #0b1220);
  --_badge-bg: var(--notify-inbox-badge-bg, #ef4444);
  --_badge-fg: var(--notify-inbox-badge-fg, #0b1220);
  --_badge-seen-bg: var(--notify-inbox-badge-seen-bg, #9ca3af);
  --_high: var(--notify-inbox-high, #fdba74);
  --_critical: var(--notify-inbox-critical, #fca5a5);
  --_shadow: var(--notify-inbox-shadow, 0 10px 30px rgba(0, 0, 0, 0.5), 0 2px 6px rgba(0, 0, 0, 0.4));
`;

export const STYLES = `
:host {
  ${LIGHT}
  --_radius: var(--notify-inbox-radius, 12px);
  --_width: var(--notify-inbox-width, 380px);
  --_max-height: var(--notify-inbox-max-height, 540px);
  --_z: var(--notify-inbox-z-index, 1000);
  position: relative;
  display: inline-block;
  font: var(--notify-inbox-font, 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif);
  text-align: start;
}
:host([theme="dark"]) { ${DARK} }
@media (prefers-color-scheme: dark) {
  :host(:not([theme="light"])) { ${DARK} }
}
:host([hidden]) { display: none; }
* { box-sizing: border-box; }
.icon { display: contents; }
button { font: inherit; color: inherit; cursor: pointer; }
.sr-only {
  position: absolute; width: 1px; height: 1px; padding: 0; margin: -1px;
  overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; border: 0;
}

.bell {
  position: relative; display: inline-flex; align-items: center; justify-content: center;
  width: 40px; height: 40px; padding: 0; border: 0; border-radius: 50%;
  background: transparent; color: var(--notify-inbox-bell-color, currentColor);
}
.bell:hover { background: var(--notify-inbox-bell-hover, rgba(127, 127, 127, 0.18)); }
.bell:focus-visible, .panel :focus-visible, .toast :focus-visible {
  outline: 2px solid var(--_accent); outline-offset: 2px;
}
.bell svg { width: 22px; height: 22px; }
.badge {
  position: absolute; top: -2px; right: -5px; min-width: 19px; height: 19px; padding: 0 5px;
  border-radius: 10px; background: var(--_badge-seen-bg); color: var(--_badge-fg);
  font-size: 11px; font-weight: 700; line-height: 19px; text-align: center;
  box-shadow: 0 0 0 2px var(--notify-inbox-badge-ring, var(--_bg));
}
.badge[hidden] { display: none; }
.bell[data-unseen] .badge { background: var(--_badge-bg); }
.unseen-dot {
  position: absolute; bottom: 6px; right: 7px; width: 8px; height: 8px; border-radius: 50%;
  background: var(--_badge-bg); box-shadow: 0 0 0 2px var(--notify-inbox-badge-ring, var(--_bg));
}
.bell:not([data-unseen]) .unseen-dot, .bell[data-unread] .unseen-dot { display: none; }

.panel {
  position: absolute; top: calc(100% + 8px); right: 0; z-index: var(--_z);
  display: flex; flex-direction: column;
  width: var(--_width); max-width: calc(100vw - 16px); max-height: var(--_max-height);
  background: var(--_bg); color: var(--_fg);
  border: 1px solid var(--_border); border-radius: var(--_radius); box-shadow: var(--_shadow);
  overflow: hidden;
}
:host([align="start"]) .panel { right: auto; left: 0; }
.panel[hidden] { display: none; }
.head {
  display: flex; align-items: center; gap: 8px; padding: 12px 14px 10px;
  border-bottom: 1px solid var(--_border);
}
.head h2 { margin: 0; font-size: 16px; font-weight: 650; flex: 1; }
.conn { font-size: 12px; color: var(--_muted); }
.conn:empty { display: none; }
.text-button {
  border: 0; background: transparent; color: var(--_accent); padding: 4px 6px; border-radius: 6px;
  font-size: 13px; font-weight: 600;
}
.text-button:hover { background: var(--_hover); }
.text-button:disabled { color: var(--_muted); cursor: default; background: transparent; }
.alert {
  margin: 0; padding: 8px 14px; font-size: 13px; color: var(--_critical);
  border-bottom: 1px solid var(--_border);
}
.alert:empty { display: none; }

.list { list-style: none; margin: 0; padding: 0; overflow-y: auto; flex: 1 1 auto; overscroll-behavior: contain; }
.item {
  position: relative; display: grid; grid-template-columns: 10px 1fr auto; gap: 4px 10px;
  padding: 12px 10px 12px 14px; border-bottom: 1px solid var(--_border);
  outline: none;
}
.item:hover { background: var(--_hover); }
.item[data-read="false"] { background: var(--_unread-bg); }
.item:focus-visible { box-shadow: inset 0 0 0 2px var(--_accent); }
.item .dot { width: 8px; height: 8px; margin-top: 6px; border-radius: 50%; background: var(--_accent); }
.item[data-read="true"] .dot { visibility: hidden; }
.body { min-width: 0; }
.message { margin: 0; overflow-wrap: anywhere; }
.item[data-read="false"] .message { font-weight: 600; }
.details { margin: 2px 0 0; color: var(--_muted); font-size: 13px; overflow-wrap: anywhere; }
.meta { margin: 4px 0 0; color: var(--_muted); font-size: 12px; display: flex; flex-wrap: wrap; gap: 2px 8px; }
.sev { font-weight: 700; text-transform: uppercase; letter-spacing: 0.03em; font-size: 11px; }
.sev-high { color: var(--_high); }
.sev-critical { color: var(--_critical); }
.item[data-severity="critical"] { border-left: 3px solid var(--_critical); padding-left: 11px; }
.item[data-severity="high"] { border-left: 3px solid var(--_high); padding-left: 11px; }
.actions { display: flex; flex-wrap: wrap; gap: 6px; margin-top: 8px; }
.action {
  border: 1px solid var(--_border); background: var(--_bg); color: var(--_fg);
  padding: 4px 10px; border-radius: 6px; font-size: 13px; font-weight: 600;
}
.action:first-child { background: var(--_accent); border-color: var(--_accent); color: var(--_accent-fg); }
.action:hover { filter: brightness(0.95); }
.action[data-chosen] { outline: 2px solid var(--_accent); outline-offset: 1px; }
.tools { display: flex; align-items: flex-start; gap: 2px; }
.icon-button {
  display: inline-flex; align-items: center; justify-content: center;
  width: 30px; height: 30px; padding: 0; border: 0; border-radius: 6px;
  background: transparent; color: var(--_muted);
}
.icon-button:hover { background: var(--_hover); color: var(--_fg); }
.icon-button svg { width: 17px; height: 17px; }
.menu {
  position: absolute; right: 10px; top: 44px; z-index: 2; min-width: 190px; padding: 4px;
  background: var(--_bg); border: 1px solid var(--_border); border-radius: 8px; box-shadow: var(--_shadow);
}
.menu[hidden] { display: none; }
.menu button {
  display: block; width: 100%; text-align: start; border: 0; background: transparent;
  padding: 8px 10px; border-radius: 6px; font-size: 13px;
}
.menu button:hover, .menu button:focus { background: var(--_hover); }

.state { padding: 28px 20px; text-align: center; color: var(--_muted); }
.state svg { width: 36px; height: 36px; opacity: 0.7; }
.state p { margin: 6px 0 0; }
.state strong { display: block; color: var(--_fg); font-size: 15px; margin-top: 8px; }
.state .retry { margin-top: 10px; }
.foot { padding: 8px 14px; font-size: 12px; color: var(--_muted); text-align: center; }
.foot:empty { display: none; }

.toasts {
  position: fixed; right: 16px; bottom: 16px; z-index: calc(var(--_z) + 1);
  display: flex; flex-direction: column; gap: 8px; width: min(360px, calc(100vw - 32px));
  pointer-events: none;
}
.toast {
  pointer-events: auto; display: grid; grid-template-columns: 1fr auto; gap: 2px 8px;
  padding: 12px 8px 12px 14px; background: var(--_bg); color: var(--_fg);
  border: 1px solid var(--_border); border-left: 4px solid var(--_high);
  border-radius: 10px; box-shadow: var(--_shadow);
}
.toast[data-severity="critical"] { border-left-color: var(--_critical); }
.toast .message { font-weight: 600; }
.toast .open { grid-column: 1; justify-self: start; padding: 2px 0; }

@media (max-width: 480px) {
  .panel {
    position: fixed; top: 64px; left: 8px; right: 8px; width: auto; max-width: none;
    max-height: calc(100vh - 80px);
  }
  :host([align="start"]) .panel { left: 8px; right: 8px; }
  .toasts { right: 8px; left: 8px; bottom: 8px; width: auto; }
  .icon-button { width: 36px; height: 36px; }
}
`;

/** @type {CSSStyleSheet | null} one sheet shared by every element */
let sheet = null;

/**
 * Styles a shadow root with a constructed style sheet, which a page's
 * Content-Security-Policy without 'unsafe-inline' (notifyd's own pages)
 * allows, unlike a <style> element; a <style> element where constructed
 * sheets are not supported.
 * @param {ShadowRoot} root
 */
export function adoptStyles(root) {
  if ('adoptedStyleSheets' in root && typeof CSSStyleSheet === 'function' && 'replaceSync' in CSSStyleSheet.prototype) {
    if (!sheet) {
      sheet = new CSSStyleSheet();
      sheet.replaceSync(STYLES);
    }
    root.adoptedStyleSheets = [sheet];
    return;
  }
  const style = document.createElement('style');
  style.textContent = STYLES;
  root.prepend(style);
}
