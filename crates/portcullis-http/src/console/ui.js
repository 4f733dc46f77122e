// The console's shared pieces: building elements, labelled fields, the API client (the session
// cookie, and the CSRF token on changing calls), inline errors and paged tables. The page modules
// (app.js and the sections it imports) build on these only; text always goes in as text.

/** The session: `{kind, actorId, name, scopes, csrfToken, expiresAt}`, or null when signed out. */
export const state = {
  session: null,
  /** Called when the API says the session ended (set by app.js: back to the sign-in screen). */
  onSignedOut: (_message) => {},
};

/** The page's main region, where each page renders. */
export const main = document.getElementById('main');
// ----- Small helpers ---------------------------------------------------------------------------

/** Builds an element: `attrs` are properties (`onclick`, `hidden`...) or attributes; children are nodes or text. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else if (k === 'text') node.textContent = v;
    else if (k === 'value' || k === 'checked') node[k] = v;
    else node.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

let uid = 0;
/** A fresh element id. */
export const nextId = (prefix) => `${prefix}-${(uid += 1)}`;

/** A labelled input (or select/textarea given as `control`), with a slot for its error. */
export function field(labelText, control, { hint, path } = {}) {
  control.id ||= nextId('f');
  const error = el('p', { class: 'field-error', id: `${control.id}-error`, hidden: true });
  const described = [];
  let hintNode = null;
  if (hint) {
    hintNode = el('p', { class: 'hint', id: `${control.id}-hint` }, hint);
    described.push(hintNode.id);
  }
  described.push(error.id);
  control.setAttribute('aria-describedby', described.join(' '));
  if (path) control.dataset.path = path;
  return el('div', { class: 'field' }, el('label', { for: control.id }, labelText), control, hintNode, error);
}

/** A text input. */
export const input = (name, attrs = {}) => el('input', { type: 'text', name, autocomplete: 'off', ...attrs });

/** A select of `[value, label]` options. */
export function select(name, options, value) {
  return el('select', { name }, options.map(([v, l]) => el('option', { value: v, selected: v === value ? true : undefined }, l)));
}

/** A checkbox with its label. */
export function checkbox(name, value, labelText, checked = false) {
  const box = el('input', { type: 'checkbox', name, value, id: nextId('c'), checked });
  return el('span', { class: 'check' }, box, el('label', { for: box.id, class: 'inline' }, labelText));
}

/** A message banner (`kind`: error, ok, info). Errors are announced. */
export function banner(text, kind = 'error') {
  return el('div', { class: `banner ${kind === 'error' ? '' : kind}`, role: kind === 'error' ? 'alert' : 'status' }, text);
}

/** "2026-05-01T10:00:00Z" as the browser's local date and time. */
export function when(text) {
  if (!text) return '—';
  const d = new Date(text);
  return Number.isNaN(d.getTime()) ? text : d.toLocaleString();
}

/** A comma-separated list as an array of trimmed, non-empty items. */
export const splitList = (text) => text.split(',').map((s) => s.trim()).filter(Boolean);

/** A value as the user typed it: a number when it is one, else the text. */
export function scalar(text) {
  const t = text.trim();
  if (t !== '' && !Number.isNaN(Number(t)) && /^-?\d+(\.\d+)?$/.test(t)) return Number(t);
  if (t === 'true') return true;
  if (t === 'false') return false;
  return t;
}

export const enc = encodeURIComponent;

// ----- The API ---------------------------------------------------------------------------------

/** An answer of the API that is not a success: its status and `{error, message, details}`. */
export class ApiFailure extends Error {
  constructor(status, body) {
    super(body?.message || `the server answered ${status}`);
    this.status = status;
    this.code = body?.error || 'error';
    this.details = body?.details;
  }
}

/** Calls the API with the session cookie (and the CSRF token on changing calls); the JSON answer. */
export async function api(method, path, body) {
  const headers = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET' && method !== 'HEAD' && state.session) headers['x-csrf-token'] = state.session.csrfToken;
  let resp;
  try {
    resp = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
      cache: 'no-store',
    });
  } catch (e) {
    throw new ApiFailure(0, { error: 'network', message: `the server cannot be reached (${e.message})` });
  }
  const text = await resp.text();
  let parsed = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    parsed = null;
  }
  if (resp.ok) return parsed;
  if (resp.status === 401 && path.startsWith('/v1/')) {
    // The session ended (expired, or its key was revoked): back to the sign-in screen.
    state.session = null;
    state.onSignedOut(parsed?.message);
  }
  throw new ApiFailure(resp.status, parsed);
}

/** Every page of a list endpoint (`?limit=&cursor=`), up to `max` items. */
export async function listAll(path, max = 1000) {
  const items = [];
  let cursor = null;
  do {
    const sep = path.includes('?') ? '&' : '?';
    const page = await api('GET', `${path}${sep}limit=200${cursor ? `&cursor=${enc(cursor)}` : ''}`);
    items.push(...page.items);
    cursor = page.nextCursor;
  } while (cursor && items.length < max);
  return items;
}

/**
 * Shows an API error in `form`: each detail with a JSON `path` beside the control whose
 * `data-path` is that path (or the closest parent path), the rest in the form's banner. The
 * message is only ever shown, never read: an error without paths goes in the banner.
 */
export function showErrors(form, failure, pathPrefix = '') {
  clearErrors(form);
  const general = [];
  const details = Array.isArray(failure.details) ? failure.details : [];
  for (const d of details) {
    // A query parameter (`{parameter, message}`) goes beside the filter of that name.
    let path = typeof d.path === 'string' ? d.path : typeof d.parameter === 'string' ? d.parameter : '';
    if (pathPrefix && path.startsWith(pathPrefix)) path = path.slice(pathPrefix.length);
    const control = closestControl(form, path);
    // A control without an error slot of its own (a group) leaves the problem to the banner.
    const slot = control?.id ? document.getElementById(`${control.id}-error`) : null;
    if (slot) {
      slot.textContent = d.message;
      slot.hidden = false;
      control.setAttribute('aria-invalid', 'true');
    } else {
      const where = d.path || d.parameter;
      general.push(d.message ? `${where ? `${where}: ` : ''}${d.message}` : JSON.stringify(d));
    }
  }
  const slot = form.querySelector('.form-error');
  slot.replaceChildren(banner(general.length ? `${failure.message}` : `The server refused: ${failure.message}`));
  if (general.length > 1) slot.append(el('ul', {}, general.map((g) => el('li', {}, g))));
  const firstInvalid = form.querySelector('[aria-invalid="true"]');
  (firstInvalid || slot).focus?.();
}

/** The control for `path`, or for its closest parent path (`conditions[0].value[1]` → `conditions[0].value`). */
export function closestControl(form, path) {
  let p = path;
  while (p) {
    const c = form.querySelector(`[data-path="${CSS.escape(p)}"]`);
    if (c) return c;
    const cut = Math.max(p.lastIndexOf('.'), p.lastIndexOf('['));
    if (cut <= 0) break;
    p = p.slice(0, cut);
  }
  return null;
}

export function clearErrors(form) {
  for (const e of form.querySelectorAll('.field-error')) {
    e.textContent = '';
    e.hidden = true;
  }
  for (const c of form.querySelectorAll('[aria-invalid]')) c.removeAttribute('aria-invalid');
  form.querySelector('.form-error')?.replaceChildren();
}

/** A form's general error slot (focusable, so the error can be announced and reached). */
export const formError = () => el('div', { class: 'form-error', tabindex: '-1' });


// ----- Tables and pages of a list --------------------------------------------------------------

/** A table with a caption and column headers, or the `empty` text when there is no row. */
export function dataTable(caption, headers, rows, empty) {
  if (!rows.length) return el('p', {}, empty);
  return el(
    'table',
    {},
    el('caption', {}, caption),
    el('thead', {}, el('tr', {}, headers.map((h) => el('th', { scope: 'col' }, h)))),
    el('tbody', {}, rows),
  );
}

/** A small button that does not submit a form. */
export const button = (text, onclick, kind = 'secondary') => el('button', { type: 'button', class: kind, onclick }, text);

/**
 * A list endpoint (`?limit=&cursor=`) shown a page at a time in `container`: `render(items)` gives
 * the page's nodes, and Previous and Next buttons walk the cursors. Resolves once the first page
 * is shown; `reload()` on the answer shows the current page again (after a change).
 */
export async function pagedList(container, path, render, limit = 20) {
  const cursors = [];
  const sep = path.includes('?') ? '&' : '?';
  async function show() {
    const cursor = cursors[cursors.length - 1];
    const page = await api('GET', `${path}${sep}limit=${limit}${cursor ? `&cursor=${enc(cursor)}` : ''}`);
    const pager = el('div', { class: 'pager' });
    if (cursors.length) {
      pager.append(button('Previous page', () => { cursors.pop(); show(); }));
    }
    if (page.nextCursor) {
      pager.append(button('Next page', () => { cursors.push(page.nextCursor); show(); }));
    }
    container.replaceChildren(render(page.items), pager);
  }
  await show();
  return { reload: show };
}

/** Sets the document's title for a page. */
export const title = (text) => {
  document.title = `${text} · Portcullis console`;
};

// ----- Pieces of the section pages ------------------------------------------------------------

/** Renders a page into the main region (absent parts left out). */
export const show = (...nodes) => main.replaceChildren(...nodes.flat().filter((n) => n !== null && n !== undefined && n !== false));

/** A message for the next page rendered (after a change that navigates): set it with `flashNext`. */
let flash = null;
export const flashNext = (text) => {
  flash = text;
};

export const takeFlash = () => {
  const f = flash;
  flash = null;
  return f ? banner(f, 'ok') : null;
};

/** Goes to `hash` (rendering it again when the console is already there). */
export function go(hash) {
  if (location.hash === hash) window.dispatchEvent(new HashChangeEvent('hashchange'));
  else location.hash = hash;
}

/** Sets (or with `null` removes) the API error path a control answers for. */
export function setPath(control, path) {
  if (path === null) delete control.dataset.path;
  else control.dataset.path = path;
}

/**
 * Shows an API refusal in `form`. A 400 about fields lists them in `details` (`{path, message}`),
 * each shown beside its control. A refusal without paths (a conflict, a reference to something
 * that does not exist: `details: {entity, id}`) goes beside the control whose path `guess(e)`
 * gives from its code and details (or null: the banner). The message is never parsed.
 */
export function refused(form, e, guess = () => null) {
  if (!(e instanceof ApiFailure)) return showErrors(form, new ApiFailure(0, { error: 'error', message: e.message }));
  if (e.status === 401) return undefined;
  const hasPaths = Array.isArray(e.details) && e.details.some((d) => typeof d?.path === 'string' || typeof d?.parameter === 'string');
  if (!hasPaths) {
    const path = guess(e);
    if (path && closestControl(form, path)) {
      return showErrors(form, new ApiFailure(e.status, { error: e.code, message: e.message, details: [{ path, message: e.message }] }));
    }
    // Object details ({entity, id}) are not a list of problems: the message says it all.
    return showErrors(form, new ApiFailure(e.status, { error: e.code, message: e.message }));
  }
  return showErrors(form, e);
}

/** A definition list of `[term, value]` pairs (an empty value shows as "—"). */
export function details(pairs) {
  return el(
    'dl',
    { class: 'settings card' },
    pairs.map(([k, v]) => [el('dt', {}, k), el('dd', {}, v === null || v === undefined || v === '' || (Array.isArray(v) && !v.length) ? '—' : v)]),
  );
}

/** A Delete (or Revoke) button with a distinct accessible name that asks first. */
export function dangerButton(text, label, question, action) {
  return el('button', {
    type: 'button',
    class: 'danger',
    'aria-label': label,
    onclick: () => {
      if (window.confirm(question)) action();
    },
  }, text);
}

/** A page's message slot (outcomes of actions that are not a form's). */
export const messages = () => el('div', { class: 'messages', 'aria-live': 'polite' });

/**
 * A list of rows (identity links, tenant memberships) with Add and Remove buttons.
 * `makeRow(i, draft, onRemove)` builds a row with `draft()` (what it holds), `read()` (the value
 * sent, or null for a blank row) and `index(k)` (sets the API paths of its controls: its place
 * among the values sent, or null when it sends nothing).
 */
export function rowsEditor({ legend, hint, path, addText, makeRow, drafts = [] }) {
  const holder = el('div', { class: 'rows' });
  let rows = [];
  const add = (draft) => {
    const row = makeRow(rows.length, draft, () => remove(row));
    rows.push(row);
    holder.append(row);
    return row;
  };
  const remove = (row) => {
    const at = rows.indexOf(row);
    const kept = rows.filter((r) => r !== row).map((r) => r.draft());
    rows = [];
    holder.replaceChildren();
    kept.forEach(add);
    (rows[Math.min(at, rows.length - 1)]?.querySelector('input, select') || addButton).focus();
  };
  const addButton = button(addText, () => add().querySelector('input, select')?.focus());
  const id = nextId('rows');
  const error = el('p', { class: 'field-error', id: `${id}-error`, hidden: true });
  const node = el(
    'fieldset',
    { id, 'data-path': path, tabindex: '-1', 'aria-describedby': error.id },
    el('legend', {}, legend),
    hint ? el('p', { class: 'hint' }, hint) : null,
    holder,
    error,
    addButton,
  );
  drafts.forEach(add);
  return {
    node,
    read() {
      const out = [];
      for (const r of rows) {
        const v = r.read();
        if (v === null) {
          r.index(null);
        } else {
          r.index(out.length);
          out.push(v);
        }
      }
      return out;
    },
  };
}

/** A page that needs a scope the session lacks, or names nothing, says so instead of failing. */
export async function guarded(heading, back, render) {
  try {
    await render();
  } catch (e) {
    if (!(e instanceof ApiFailure) || ![403, 404].includes(e.status)) throw e;
    title(heading);
    show(
      el('h1', {}, heading),
      banner(e.status === 403 ? `You cannot see this page: ${e.message}.` : `Not found: ${e.message}.`),
      back ? el('p', {}, el('a', { href: back[0] }, back[1])) : null,
    );
  }
}
