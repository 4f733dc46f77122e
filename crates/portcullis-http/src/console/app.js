// The Portcullis admin console: a single page that calls the management API (/v1/mgmt) with the
// session cookie POST /console/session set. The admin key is sent once and never kept; the CSRF
// token lives in ui.js's memory only and goes out as X-CSRF-Token on every changing call.
// No framework, no build step: every element is built with `el` and text goes in as text (never
// as HTML), so nothing an API returns can inject markup. This module signs in and out, routes,
// and renders the dashboard, the outbound apps and the audit log; each other section is a module
// exporting `pages` (section name → async function of the path's remaining parts).

import {
  ApiFailure, api, banner, checkbox, clearErrors, dataTable, el, enc, field, formError, input,
  listAll, main, nextId, pagedList, scalar, select, showErrors, splitList, state, title, when,
} from './ui.js';
import { pages as directoryPages } from './directory.js';
import { pages as serverPages } from './servers.js';

/** The sections other modules render, by the hash's first part. */
const SECTIONS = { ...directoryPages, ...serverPages };

// ----- Sign in and out -------------------------------------------------------------------------

/** Shows the header for the signed-in admin. */
function showHeader() {
  const signedIn = Boolean(state.session);
  document.getElementById('nav').hidden = !signedIn;
  document.getElementById('who').hidden = !signedIn;
  if (signedIn) {
    document.getElementById('who-name').textContent = `Signed in as ${state.session.name} (${state.session.actorId})`;
  }
}

function showSignIn(message) {
  showHeader();
  document.title = 'Sign in · Portcullis console';
  const key = el('input', { type: 'password', name: 'adminKey', autocomplete: 'off', required: true, spellcheck: 'false' });
  const form = el(
    'form',
    { class: 'card narrow', novalidate: true },
    formError(),
    field('Admin key', key, { hint: 'Paste an admin key (pca_…). It is checked once and not kept by this page.', path: 'adminKey' }),
    el('div', { class: 'actions' }, el('button', { type: 'submit' }, 'Sign in')),
  );
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearErrors(form);
    try {
      const resp = await fetch('/console/session', {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json' },
        body: JSON.stringify({ adminKey: key.value }),
        credentials: 'same-origin',
      });
      const body = await resp.json().catch(() => null);
      // The key is not needed any more: forget it.
      key.value = '';
      if (!resp.ok) throw new ApiFailure(resp.status, body);
      state.session = body;
      if (!location.hash || location.hash === '#/' || location.hash === '#/sign-in') location.hash = '#/dashboard';
      route();
    } catch (e) {
      showErrors(form, e.details ? e : Object.assign(e, { details: [{ path: 'adminKey', message: e.message }] }));
    }
  });
  main.replaceChildren(
    el('h1', {}, 'Sign in to the Portcullis console'),
    ...(message ? [banner(message, 'info')] : []),
    el(
      'section',
      { class: 'card narrow', 'aria-labelledby': 'sign-in-user' },
      el('h2', { id: 'sign-in-user' }, 'With your account'),
      el('p', {}, 'Users who hold an admin role (portcullis.admin, portcullis.read…) sign in as they do anywhere in Portcullis: password or single sign-on.'),
      el('p', {}, el('a', { href: '/console/sign-in', class: 'button' }, 'Sign in with your Portcullis account')),
    ),
    el('h2', {}, 'With an admin key'),
    form,
  );
  key.focus();
}

async function signOut() {
  try {
    await fetch('/console/session', { method: 'DELETE', credentials: 'same-origin' });
  } finally {
    state.session = null;
    showSignIn('You are signed out.');
  }
}

// ----- Routing ---------------------------------------------------------------------------------

/** Renders the page the hash names (`#/dashboard`, `#/apps`, `#/apps/new`, `#/apps/{id}/{tab}`, `#/audit`). */
async function route() {
  if (!state.session) return showSignIn();
  showHeader();
  const parts = (location.hash.replace(/^#\/?/, '') || 'dashboard').split('/').map(decodeURIComponent);
  for (const a of document.querySelectorAll('#nav a')) {
    if (a.dataset.section === parts[0]) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  try {
    if (parts[0] === 'dashboard') await dashboardPage();
    else if (parts[0] === 'audit') await auditPage();
    else if (parts[0] === 'apps' && parts[1] === 'new') createAppPage();
    else if (parts[0] === 'apps' && parts[1]) await appPage(parts[1], parts[2] || 'access');
    else if (parts[0] === 'apps') await appsPage();
    else if (SECTIONS[parts[0]]) await SECTIONS[parts[0]](parts.slice(1));
    else main.replaceChildren(el('h1', {}, 'Not found'), el('p', {}, 'The console has no such page. ', el('a', { href: '#/dashboard' }, 'Back to the dashboard.')));
  } catch (e) {
    if (e instanceof ApiFailure && e.status === 401) return;
    main.replaceChildren(el('h1', {}, 'Something went wrong'), banner(e.message));
  }
  main.focus();
}

// ----- The dashboard ---------------------------------------------------------------------------

/** The windows the dashboard offers: `[value, label, seconds, bucket seconds]`. */
const WINDOWS = [
  ['1h', 'Last hour', 3600, 60],
  ['24h', 'Last 24 hours', 86_400, 3600],
  ['7d', 'Last 7 days', 7 * 86_400, 6 * 3600],
  ['30d', 'Last 30 days', 30 * 86_400, 86_400],
];

/** The outcomes in the order the charts stack them, each with its words. */
const OUTCOME_LABELS = {
  allowed: 'Allowed',
  denied: 'Denied',
  consent_required: 'Consent required',
  not_connected: 'Not connected',
  invalid_token: 'Invalid token',
  invalid_request: 'Invalid request',
  error: 'Error',
};

/** How many apps the per-app chart draws apart; the rest are summed as "Other apps". */
const CHART_APPS = 5;

const SVG_NS = 'http://www.w3.org/2000/svg';

/** Builds an SVG element (attributes only; children are nodes or text). */
function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null) node.setAttribute(k, String(v));
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

/** A bucket's start as a short label: the time for windows of a day or less, else the date. */
function bucketLabel(iso, bucketSeconds) {
  const d = new Date(iso);
  return bucketSeconds < 86_400 ? d.toLocaleString([], { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' }) : d.toLocaleDateString();
}

/** A round upper bound for an axis: 1, 2, 5, 10, 20, 50... at or above `n`. */
function niceMax(n) {
  if (n <= 1) return 1;
  const p = 10 ** Math.floor(Math.log10(n));
  return [1, 2, 5, 10].map((m) => m * p).find((v) => v >= n);
}

/**
 * A stacked bar chart (inline SVG) of `series` (`[{key, label, cls}]`) over the buckets, where
 * `value(bucket, key)` is a count; with a legend, and the same numbers as a table in a
 * disclosure for screen readers and for copying.
 */
function stackedChart(title, summary, series, value) {
  const W = 720;
  const H = 220;
  const pad = { left: 44, right: 8, top: 10, bottom: 28 };
  const buckets = summary.buckets;
  const totals = buckets.map((b) => series.reduce((n, s) => n + value(b, s.key), 0));
  const max = niceMax(Math.max(0, ...totals));
  const plotW = W - pad.left - pad.right;
  const plotH = H - pad.top - pad.bottom;
  const step = plotW / Math.max(1, buckets.length);
  const barW = Math.max(1, step * 0.8);
  const y = (n) => pad.top + plotH - (n / max) * plotH;
  const titleId = nextId('chart-title');
  const descId = nextId('chart-desc');
  const total = totals.reduce((a, b) => a + b, 0);
  const byKey = series.map((s) => [s, buckets.reduce((n, b) => n + value(b, s.key), 0)]).filter(([, n]) => n > 0);
  const words = total
    ? `${total} decision${total === 1 ? '' : 's'}: ${byKey.map(([s, n]) => `${s.label} ${n}`).join(', ')}.`
    : 'No decision in this window.';
  const grid = [0, max / 2, max].map((v) => [
    svg('line', { x1: pad.left, x2: W - pad.right, y1: y(v), y2: y(v), class: 'grid' }),
    svg('text', { x: pad.left - 6, y: y(v) + 4, 'text-anchor': 'end', class: 'axis' }, Number.isInteger(v) ? v : v.toFixed(1)),
  ]);
  const bars = buckets.map((b, i) => {
    let acc = 0;
    const x = pad.left + i * step + (step - barW) / 2;
    const label = bucketLabel(b.start, summary.bucketSeconds);
    return series.map((s) => {
      const n = value(b, s.key);
      if (!n) return null;
      const top = y(acc + n);
      const rect = svg('rect', { x: x.toFixed(2), y: top.toFixed(2), width: barW.toFixed(2), height: (y(acc) - top).toFixed(2), class: `bar ${s.cls}` }, svg('title', {}, `${label}: ${s.label} ${n}`));
      acc += n;
      return rect;
    });
  });
  const ticks = [0, Math.floor((buckets.length - 1) / 2), buckets.length - 1]
    .filter((v, i, a) => v >= 0 && a.indexOf(v) === i)
    .map((i) => svg('text', { x: pad.left + i * step + step / 2, y: H - 8, 'text-anchor': i === 0 ? 'start' : i === buckets.length - 1 ? 'end' : 'middle', class: 'axis' }, bucketLabel(buckets[i].start, summary.bucketSeconds)));
  const chart = svg(
    'svg',
    { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-labelledby': `${titleId} ${descId}`, class: 'chart' },
    svg('title', { id: titleId }, title),
    svg('desc', { id: descId }, words),
    grid,
    svg('line', { x1: pad.left, x2: W - pad.right, y1: y(0), y2: y(0), class: 'baseline' }),
    bars,
    ticks,
  );
  const legend = el('ul', { class: 'legend' }, series.map((s) => el('li', {}, el('span', { class: `swatch ${s.cls}`, 'aria-hidden': 'true' }), s.label)));
  const table = el(
    'table',
    {},
    el('caption', {}, title),
    el('thead', {}, el('tr', {}, el('th', { scope: 'col' }, 'From'), series.map((s) => el('th', { scope: 'col' }, s.label)), el('th', { scope: 'col' }, 'Total'))),
    el(
      'tbody',
      {},
      buckets
        .map((b, i) => [b, i])
        .filter(([, i]) => totals[i] > 0)
        .map(([b, i]) => el('tr', {}, el('th', { scope: 'row' }, when(b.start)), series.map((s) => el('td', {}, value(b, s.key))), el('td', {}, totals[i]))),
    ),
  );
  return el(
    'figure',
    { class: 'card chart-card' },
    el('figcaption', {}, el('h2', {}, title), el('p', { class: 'chart-total' }, words)),
    chart,
    legend,
    total ? el('details', {}, el('summary', {}, 'Show the numbers as a table'), table) : null,
  );
}

/** Microseconds in words: `850 µs`, `12.3 ms`. */
const micros = (us) => (us >= 1000 ? `${(us / 1000).toFixed(1)} ms` : `${us} µs`);

async function dashboardPage(windowKey = '24h') {
  document.title = 'Dashboard · Portcullis console';
  const [key, label, seconds, bucket] = WINDOWS.find(([k]) => k === windowKey) || WINDOWS[1];
  const until = new Date();
  const since = new Date(until.getTime() - seconds * 1000);
  const q = new URLSearchParams({ since: since.toISOString(), until: until.toISOString(), bucket: String(bucket) });
  const summary = await api('GET', `/v1/mgmt/audit/summary?${q}`);
  const range = select('window', WINDOWS.map(([k, l]) => [k, l]), key);
  const form = el(
    'form',
    { class: 'card inline-form', novalidate: true },
    formError(),
    field('Window', range, { path: 'since' }),
    el('div', { class: 'actions' }, el('button', { type: 'submit' }, 'Show')),
  );
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    try {
      await dashboardPage(range.value);
      main.querySelector('select[name=window]')?.focus();
    } catch (e) {
      if (e.status !== 401) showErrors(form, e);
    }
  });
  const outcomes = Object.entries(OUTCOME_LABELS).map(([k, l]) => ({ key: k, label: l, cls: `o-${k}` }));
  const top = summary.apps.slice(0, CHART_APPS).map((a) => a.appId);
  const appSeries = top.map((id, i) => ({ key: id, label: id, cls: `s-${i}` }));
  if (summary.apps.length > CHART_APPS) appSeries.push({ key: '', label: 'Other apps', cls: 's-other' });
  const perApp = (b, k) => (k ? b.apps[k] || 0 : Object.entries(b.apps).filter(([id]) => !top.includes(id)).reduce((n, [, v]) => n + v, 0));
  const appLink = (id) => el('a', { href: `#/apps/${enc(id)}/access` }, id);
  const denied = summary.apps.filter((a) => a.denied > 0).sort((a, b) => b.denied - a.denied || b.decisions - a.decisions).slice(0, 5);
  const slowest = [...summary.apps].sort((a, b) => b.avgLatencyUs - a.avgLatencyUs).slice(0, 5);
  const deniedTable = denied.length
    ? el(
        'table',
        {},
        el('caption', {}, 'Most denied apps'),
        el('thead', {}, el('tr', {}, ['App', 'Denied', 'Decisions', 'Denied share'].map((h) => el('th', { scope: 'col' }, h)))),
        el('tbody', {}, denied.map((a) => el('tr', {}, el('td', {}, appLink(a.appId)), el('td', {}, a.denied), el('td', {}, a.decisions), el('td', {}, `${Math.round((100 * a.denied) / a.decisions)} %`)))),
      )
    : el('p', {}, 'No app had a request denied in this window.');
  const slowTable = slowest.length
    ? el(
        'table',
        {},
        el('caption', {}, 'Slowest apps'),
        el('thead', {}, el('tr', {}, ['App', 'Mean decision time', 'Longest', 'Decisions'].map((h) => el('th', { scope: 'col' }, h)))),
        el('tbody', {}, slowest.map((a) => el('tr', {}, el('td', {}, appLink(a.appId)), el('td', {}, micros(a.avgLatencyUs)), el('td', {}, micros(a.maxLatencyUs)), el('td', {}, a.decisions)))),
      )
    : el('p', {}, 'No app had a decision in this window.');
  main.replaceChildren(
    el('h1', {}, 'Dashboard'),
    el('p', { class: 'hint' }, `${label}: ${when(summary.since)} to ${when(summary.until)}, by ${summary.bucketSeconds >= 3600 ? `${summary.bucketSeconds / 3600} hour` : `${summary.bucketSeconds / 60} minute`} periods.`),
    form,
    stackedChart('Decisions by outcome', summary, outcomes, (b, k) => b.outcomes[k] || 0),
    stackedChart('Decisions by app', summary, appSeries, perApp),
    el('div', { class: 'two-up' }, el('section', { 'aria-label': 'Most denied apps', class: 'card' }, deniedTable), el('section', { 'aria-label': 'Slowest apps', class: 'card' }, slowTable)),
  );
}

// ----- Outbound apps ---------------------------------------------------------------------------

/** The list of apps, a page at a time. */
async function appsPage() {
  title('Outbound apps');
  const list = el('div');
  main.replaceChildren(
    el('h1', {}, 'Outbound apps'),
    el('p', {}, el('a', { href: '#/apps/new' }, 'Register an outbound app')),
    list,
  );
  await pagedList(list, '/v1/mgmt/outbound-apps', (items) =>
    dataTable(
      'Registered outbound apps',
      ['Name', 'Id', 'Type', 'Scopes'],
      items.map((a) =>
        el(
          'tr',
          {},
          el('td', {}, el('a', { href: `#/apps/${enc(a.id)}/access` }, a.name)),
          el('td', {}, el('code', {}, a.id)),
          el('td', {}, a.type === 'oauth' ? 'OAuth' : 'API key'),
          el('td', {}, (a.scopes || []).map((sc) => sc.name).join(', ') || '—'),
        ),
      ),
      'No outbound app is registered yet.',
    ),
  );
}

function createAppPage() {
  document.title = 'Register an app · Portcullis console';
  const type = select('type', [['oauth', 'OAuth'], ['apiKey', 'API key']], 'oauth');
  const oauth = el(
    'fieldset',
    {},
    el('legend', {}, 'OAuth settings'),
    field('Client ID', input('clientId'), { path: 'clientId' }),
    field('Client secret', el('input', { type: 'password', name: 'clientSecret', autocomplete: 'off' }), { path: 'clientSecret' }),
    field('Authorization URL', input('authorizationUrl', { type: 'url' }), { path: 'authorizationUrl' }),
    field('Token URL', input('tokenUrl', { type: 'url' }), { path: 'tokenUrl' }),
  );
  const form = el(
    'form',
    { class: 'card', novalidate: true },
    formError(),
    field('Name', input('name', { required: true }), { path: 'name' }),
    field('Id', input('id', { required: true }), { path: 'id', hint: 'A slug used in every URL (letters, digits, - and _); it cannot change.' }),
    field('Type', type, { path: 'type' }),
    oauth,
    field('Scopes', input('scopes'), { path: 'scopes', hint: 'The scopes the provider offers, comma-separated (for example calendar.readonly, calendar.events).' }),
    el('div', { class: 'actions' }, el('button', { type: 'submit' }, 'Register app'), el('a', { href: '#/apps' }, 'Cancel')),
  );
  type.addEventListener('change', () => {
    oauth.hidden = type.value !== 'oauth';
  });
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const v = (n) => form.elements[n].value.trim();
    const body = { id: v('id'), name: v('name'), type: type.value, scopes: splitList(v('scopes')).map((name) => ({ name })) };
    if (type.value === 'oauth') {
      for (const k of ['clientId', 'clientSecret', 'authorizationUrl', 'tokenUrl']) if (v(k)) body[k] = v(k);
    }
    try {
      const app = await api('POST', '/v1/mgmt/outbound-apps', body);
      location.hash = `#/apps/${enc(app.id)}/access`;
    } catch (e) {
      if (e instanceof ApiFailure && e.status !== 401) showErrors(form, e);
    }
  });
  main.replaceChildren(el('h1', {}, 'Register an outbound app'), form);
  form.elements.name.focus();
}

// ----- An app ----------------------------------------------------------------------------------

const TABS = [
  ['access', 'Access Control'],
  ['test', 'Test'],
  ['tokens', 'Token Management'],
  ['settings', 'Settings'],
];

async function appPage(appId, tab) {
  const app = await api('GET', `/v1/mgmt/outbound-apps/${enc(appId)}`);
  const label = TABS.find(([t]) => t === tab)?.[1] || 'Access Control';
  document.title = `${app.name}: ${label} · Portcullis console`;
  const tabs = el(
    'nav',
    { class: 'tabs', 'aria-label': `${app.name} sections` },
    el('ul', {}, TABS.map(([t, l]) => el('li', {}, el('a', { href: `#/apps/${enc(app.id)}/${t}`, 'aria-current': t === tab ? 'page' : undefined }, l)))),
  );
  const body = el('section', { 'aria-label': label });
  main.replaceChildren(
    el('p', {}, el('a', { href: '#/apps' }, '← All apps')),
    el('h1', {}, app.name, ' ', el('span', { class: 'muted' }, `(${app.id})`)),
    tabs,
    body,
  );
  if (tab === 'test') await testTab(app, body);
  else if (tab === 'tokens') await tokensTab(app, body);
  else if (tab === 'settings') settingsTab(app, body);
  else await accessTab(app, body);
}

/** A policy's document: what the API takes back (without its id and timestamps). */
function documentOf(p) {
  const doc = { name: p.name, conditions: p.conditions, scopes: p.scopes };
  if (p.description) doc.description = p.description;
  if (p.mode) doc.mode = p.mode;
  return doc;
}

/** A condition in words: `userRoles in [Viewer, Editor]`. */
function conditionText(c) {
  const v = Array.isArray(c.value) ? `[${c.value.join(', ')}]` : JSON.stringify(c.value);
  return `${c.source === 'jwtClaims' ? `claim ${c.claim}` : 'userRoles'} ${c.operator} ${v}`;
}

const scopesText = (s) => (s === 'all' ? 'All scopes' : s.join(', '));

async function accessTab(app, body) {
  const policies = await listAll(`/v1/mgmt/outbound-apps/${enc(app.id)}/policies`);
  const list = policies.length
    ? el(
        'table',
        {},
        el('caption', {}, 'Policies'),
        el('thead', {}, el('tr', {}, ['Name', 'Conditions', 'Scopes', 'Mode', ''].map((h) => el('th', { scope: 'col' }, h)))),
        el(
          'tbody',
          {},
          policies.map((p) =>
            el(
              'tr',
              {},
              el('td', {}, p.name, p.description ? el('p', { class: 'hint' }, p.description) : null),
              el('td', {}, p.conditions.length ? el('ul', {}, p.conditions.map((c) => el('li', {}, el('code', {}, conditionText(c))))) : 'Everyone (no condition)'),
              el('td', {}, scopesText(p.scopes)),
              el('td', {}, p.mode || 'enforce'),
              el(
                'td',
                { class: 'row-actions' },
                el(
                  'button',
                  {
                    type: 'button',
                    class: 'secondary',
                    'aria-label': `Edit policy ${p.name}`,
                    onclick: () => {
                      editor.replaceChildren(policyForm(app, policies, p, () => editor.replaceChildren(policyForm(app, policies))));
                      editor.querySelector('input[name=name]')?.focus();
                    },
                  },
                  'Edit',
                ),
                ' ',
                el(
                  'button',
                  {
                    type: 'button',
                    class: 'danger',
                    'aria-label': `Delete policy ${p.name}`,
                    onclick: async () => {
                      if (!window.confirm(`Delete the policy "${p.name}"?`)) return;
                      try {
                        await api('DELETE', `/v1/mgmt/outbound-apps/${enc(app.id)}/policies/${enc(p.id)}`);
                        await appPage(app.id, 'access');
                      } catch (e) {
                        if (e.status !== 401) body.prepend(banner(e.message));
                      }
                    },
                  },
                  'Delete',
                ),
              ),
            ),
          ),
        ),
      )
    : el('p', {}, 'This app has no policy: every authenticated user may fetch tokens for it. The first policy restricts it to the users it matches.');
  const editor = el('div', {}, policyForm(app, policies));
  body.replaceChildren(el('h2', {}, 'Policies'), list, noMatchForm(app), editor);
}

/** What a request no policy allows gets (the app's `onDeny`), changed in place. */
function noMatchForm(app) {
  const choices = [
    ['forbid', 'Refuse: 403 access_denied, with the reason'],
    ['reconsent', 'Re-consent: 403 consent_required, with a link asking the provider for only what the policies allow'],
  ];
  const radios = choices.map(([v, l]) => {
    const r = el('input', { type: 'radio', name: 'onDeny', value: v, id: nextId('d'), checked: (app.onDeny || 'forbid') === v });
    return el('span', { class: 'check' }, r, el('label', { for: r.id, class: 'inline' }, l));
  });
  const status = el('div', { 'aria-live': 'polite' });
  const form = el(
    'form',
    { class: 'card', novalidate: true },
    formError(),
    el('fieldset', { 'data-path': 'onDeny', id: nextId('ondeny'), tabindex: '-1' }, el('legend', {}, 'When no policy allows a request'), radios),
    el('div', { class: 'actions' }, el('button', { type: 'submit', class: 'secondary' }, 'Save no-match behaviour')),
    status,
  );
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearErrors(form);
    const onDeny = form.querySelector('[name=onDeny]:checked').value;
    try {
      const saved = await saveApp(app, { onDeny });
      Object.assign(app, saved);
      status.replaceChildren(banner(onDeny === 'forbid' ? 'Requests no policy allows are refused.' : 'Requests no policy allows are asked to re-consent.', 'ok'));
    } catch (e) {
      if (e.status !== 401) showErrors(form, e);
    }
  });
  return form;
}

/** The fields of an app's view that `PUT /v1/mgmt/outbound-apps/{id}` takes back. */
const APP_FIELDS = [
  'id', 'name', 'description', 'type', 'clientId', 'authorizationUrl', 'tokenUrl', 'revocationUrl', 'userinfoUrl',
  'scopes', 'defaultScopes', 'pkce', 'authorizationParams', 'narrowScopesOnRefresh', 'tokenEndpointAuthMethod',
  'onDeny', 'denialDetail', 'issuer', 'sharedCallback',
];

/** Replaces the app with its current settings and `changes` (the client secret is kept unless given). */
function saveApp(app, changes) {
  const body = {};
  for (const k of APP_FIELDS) if (app[k] !== undefined && app[k] !== null) body[k] = app[k];
  Object.assign(body, changes);
  for (const [k, v] of Object.entries(body)) if (v === null || v === '') delete body[k];
  return api('PUT', `/v1/mgmt/outbound-apps/${enc(app.id)}`, body);
}

/** One condition row of the policy form (`i` is its index, for the error paths). */
function conditionRow(i, onRemove) {
  const source = select('source', [['userRoles', 'userRoles'], ['jwtClaims', 'jwtClaims']], 'userRoles');
  const claim = input('claim');
  const operator = select('operator', ['equals', 'notEquals', 'in', 'notIn', 'contains'].map((o) => [o, o]), 'in');
  const value = input('value');
  const claimField = field('Claim', claim, { path: `conditions[${i}].claim`, hint: 'For example org_id or realm_access.roles.' });
  claimField.hidden = true;
  source.addEventListener('change', () => {
    claimField.hidden = source.value !== 'jwtClaims';
  });
  const row = el(
    'div',
    { class: 'condition', role: 'group', 'aria-label': `Condition ${i + 1}` },
    field('Source', source, { path: `conditions[${i}].source` }),
    claimField,
    field('Operator', operator, { path: `conditions[${i}].operator` }),
    field('Value(s)', value, { path: `conditions[${i}].value`, hint: 'Comma-separated for in and notIn.' }),
    el('div', {}, el('button', { type: 'button', class: 'secondary', onclick: onRemove, 'aria-label': `Remove condition ${i + 1}` }, 'Remove')),
  );
  row.read = () => {
    const c = { source: source.value, operator: operator.value };
    if (source.value === 'jwtClaims') c.claim = claim.value.trim();
    c.value = ['in', 'notIn'].includes(operator.value) ? splitList(value.value).map(scalar) : scalar(value.value);
    return c;
  };
  return row;
}

/**
 * The Create Policy form, or the Edit form of `editing` (with `onCancel`): a replay preview of the
 * whole draft set (the current policies with this one added or replaced) comes before Save.
 */
function policyForm(app, current, editing = null, onCancel = null) {
  const headingId = nextId('policy-form');
  const conditions = el('div', { class: 'conditions' });
  let rows = [];
  const renumber = () => {
    // Rebuild the rows so that their error paths follow their positions.
    const drafts = rows.map((r) => r.read());
    rows = [];
    conditions.replaceChildren();
    drafts.forEach((d) => addRow(d));
  };
  const addRow = (draft) => {
    const i = rows.length;
    const row = conditionRow(i, () => {
      rows.splice(rows.indexOf(row), 1);
      renumber();
      invalidate();
    });
    if (draft) {
      row.querySelector('[name=source]').value = draft.source;
      row.querySelector('[name=source]').dispatchEvent(new Event('change'));
      row.querySelector('[name=claim]').value = draft.claim || '';
      row.querySelector('[name=operator]').value = draft.operator;
      row.querySelector('[name=value]').value = Array.isArray(draft.value) ? draft.value.join(', ') : String(draft.value ?? '');
    }
    rows.push(row);
    conditions.append(row);
    return row;
  };

  const all = checkbox('allScopes', 'all', 'All Scopes');
  const scopeBoxes = (app.scopes || []).map((s) => checkbox('scope', s.name, s.name));
  const scopeList = el('div', { class: 'scope-list', 'data-path': 'scopes', id: nextId('scopes'), tabindex: '-1' }, all, scopeBoxes);
  const scopesError = el('p', { class: 'field-error', id: `${scopeList.id}-error`, hidden: true });
  all.querySelector('input').addEventListener('change', (ev) => {
    for (const b of scopeBoxes) b.querySelector('input').disabled = ev.target.checked;
  });
  const mode = el(
    'fieldset',
    {},
    el('legend', {}, 'Mode'),
    ['enforce', 'shadow'].map((m) => {
      const r = el('input', { type: 'radio', name: 'mode', value: m, id: nextId('m'), checked: m === 'enforce' });
      return el('span', { class: 'check' }, r, el('label', { for: r.id, class: 'inline' }, m === 'enforce' ? 'Enforce' : 'Shadow (record what it would decide, decide nothing)'));
    }),
  );
  const preview = el('div', { class: 'preview', 'aria-live': 'polite' });
  const save = el('button', { type: 'submit', disabled: true }, 'Save policy');
  const previewButton = el('button', { type: 'button', class: 'secondary' }, 'Preview impact');
  const form = el(
    'form',
    { class: 'card', novalidate: true },
    formError(),
    field('Name', input('name'), { path: 'name' }),
    field('Description', input('description'), { path: 'description' }),
    el('fieldset', {}, el('legend', {}, 'Conditions (all must hold)'), conditions, el('button', { type: 'button', class: 'secondary', onclick: () => { addRow(); invalidate(); } }, 'Add condition')),
    el('fieldset', {}, el('legend', {}, 'Accessible scopes'), scopeList, scopesError),
    mode,
    preview,
    el('div', { class: 'actions' }, previewButton, save, onCancel ? el('button', { type: 'button', class: 'secondary', onclick: onCancel }, 'Cancel') : null),
  );
  if (editing) {
    form.elements.name.value = editing.name;
    form.elements.description.value = editing.description || '';
    for (const c of editing.conditions) addRow(c);
    if (editing.scopes === 'all') {
      all.querySelector('input').checked = true;
      for (const b of scopeBoxes) b.querySelector('input').disabled = true;
    } else {
      for (const b of scopeBoxes) b.querySelector('input').checked = editing.scopes.includes(b.querySelector('input').value);
    }
    form.querySelector(`[name=mode][value=${editing.mode || 'enforce'}]`).checked = true;
  } else {
    addRow();
  }

  let previewed = null;
  function invalidate() {
    previewed = null;
    save.disabled = true;
  }
  form.addEventListener('input', invalidate);
  form.addEventListener('change', invalidate);

  const draft = () => {
    const doc = {
      name: form.elements.name.value.trim(),
      conditions: rows.map((r) => r.read()),
      scopes: all.querySelector('input').checked
        ? 'all'
        : scopeBoxes.map((b) => b.querySelector('input')).filter((b) => b.checked).map((b) => b.value),
      mode: form.querySelector('[name=mode]:checked').value,
    };
    const description = form.elements.description.value.trim();
    if (description) doc.description = description;
    return doc;
  };

  previewButton.addEventListener('click', async () => {
    clearErrors(form);
    scopesError.hidden = true;
    preview.replaceChildren(el('p', { class: 'muted' }, 'Replaying the recorded decisions…'));
    const doc = draft();
    const set = editing
      ? current.map((p) => (p.id === editing.id ? doc : documentOf(p)))
      : [...current.map(documentOf), doc];
    try {
      const out = await api('POST', `/v1/mgmt/outbound-apps/${enc(app.id)}/policies/replay`, { policies: set });
      preview.replaceChildren(replaySummary(out));
      previewed = JSON.stringify(doc);
      save.disabled = false;
    } catch (e) {
      preview.replaceChildren();
      if (e.status !== 401) showPolicyErrors(form, e, scopesError);
    }
  });

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const doc = draft();
    if (previewed !== JSON.stringify(doc)) {
      save.disabled = true;
      return;
    }
    try {
      if (editing) await api('PUT', `/v1/mgmt/outbound-apps/${enc(app.id)}/policies/${enc(editing.id)}`, doc);
      else await api('POST', `/v1/mgmt/outbound-apps/${enc(app.id)}/policies`, doc);
      await appPage(app.id, 'access');
      main.querySelector('section')?.prepend(banner(`The policy "${doc.name}" is ${editing ? 'updated' : 'saved'}.`, 'ok'));
    } catch (e) {
      if (e.status !== 401) showPolicyErrors(form, e, scopesError);
    }
  });

  form.setAttribute('aria-labelledby', headingId);
  return el('div', {}, el('h2', { id: headingId }, editing ? `Edit policy ${editing.name}` : 'Create Policy'), form);
}

/** Shows a policy validation error; the scopes' errors go under the scope list. */
function showPolicyErrors(form, e, scopesError) {
  showErrors(form, e);
  const details = Array.isArray(e.details) ? e.details : [];
  const scopeProblems = details.filter((d) => typeof d.path === 'string' && d.path.startsWith('scopes'));
  if (scopeProblems.length) {
    scopesError.textContent = scopeProblems.map((d) => d.message).join('; ');
    scopesError.hidden = false;
  }
}

/** The replay's answer in words: who would lose and gain access. */
function replaySummary(out) {
  const days = Math.max(1, Math.round((Date.parse(out.until) - Date.parse(out.since)) / 86_400_000));
  const period = `in the last ${days} day${days === 1 ? '' : 's'}`;
  const who = (impact) =>
    impact.first.map((u) => `${u.userId} (${u.scopes.join(', ')})`).join(', ') + (impact.users > impact.first.length ? `, and ${impact.users - impact.first.length} more` : '');
  const lines = [];
  if (out.replayed === 0) {
    lines.push(el('p', {}, `No decision was recorded for this app ${period}: nothing to replay.`));
  } else {
    lines.push(el('p', {}, `Replayed ${out.replayed} decision${out.replayed === 1 ? '' : 's'} ${period}; ${out.changed} would change.`));
  }
  if (out.losing.users > 0) {
    lines.push(el('p', { class: 'error' }, `This change would deny ${out.losing.users} user${out.losing.users === 1 ? '' : 's'} who ${out.losing.users === 1 ? 'was' : 'were'} allowed ${period}: ${who(out.losing)}.`));
  }
  if (out.gaining.users > 0) {
    lines.push(el('p', { class: 'notice' }, `This change would allow ${out.gaining.users} user${out.gaining.users === 1 ? '' : 's'} who ${out.gaining.users === 1 ? 'was' : 'were'} denied ${period}: ${who(out.gaining)}.`));
  }
  if (out.replayed > 0 && out.losing.users === 0 && out.gaining.users === 0) {
    lines.push(el('p', {}, 'No user would gain or lose access.'));
  }
  if (!out.complete) lines.push(el('p', { class: 'hint' }, 'Only the most recent decisions were replayed.'));
  return el('div', { class: `banner ${out.losing.users > 0 ? '' : 'info'}`, role: 'status' }, el('h3', {}, 'Impact of this change'), lines);
}

// ----- The simulator ---------------------------------------------------------------------------

async function testTab(app, body) {
  let users = [];
  try {
    users = await listAll('/v1/mgmt/users', 500);
  } catch {
    users = [];
  }
  const policies = await listAll(`/v1/mgmt/outbound-apps/${enc(app.id)}/policies`);
  const names = Object.fromEntries(policies.map((p) => [p.id, p.name]));
  const list = el('datalist', { id: nextId('users') }, users.map((u) => el('option', { value: u.id })));
  const user = input('userId', { list: list.id });
  const roles = input('roles');
  const claims = el('textarea', { name: 'claims', spellcheck: 'false' });
  const scopeBoxes = (app.scopes || []).map((s) => checkbox('scope', s.name, s.name, true));
  const token = el('textarea', { name: 'token', spellcheck: 'false', autocomplete: 'off', rows: 4 });
  const result = el('div', { 'aria-live': 'polite' });
  const subjectFields = el(
    'div',
    {},
    field('User', user, { path: 'subject.userId', hint: 'Pick a directory user or type an id (optional).' }),
    list,
    field('Roles', roles, { path: 'subject.roles', hint: 'Comma-separated. Leave empty to use the user\'s roles in the directory.' }),
    field('Claims (JSON)', claims, { path: 'subject.claims', hint: 'The inbound token\'s claims, for jwtClaims conditions, e.g. {"org_id": "acme"}.' }),
  );
  const tokenFields = el(
    'div',
    { hidden: true },
    field('Inbound token', token, { path: 'token', hint: 'An access token as an MCP server would present it: verified like a real request (signature, issuer, audience, expiry), then its user, roles and claims decide. It is not stored.' }),
  );
  const how = el(
    'fieldset',
    {},
    el('legend', {}, 'Test with'),
    [['subject', 'A user, roles and claims'], ['token', 'A pasted token']].map(([v, l]) => {
      const r = el('input', { type: 'radio', name: 'how', value: v, id: nextId('how'), checked: v === 'subject' });
      r.addEventListener('change', () => {
        subjectFields.hidden = v !== 'subject';
        tokenFields.hidden = v !== 'token';
      });
      return el('span', { class: 'check' }, r, el('label', { for: r.id, class: 'inline' }, l));
    }),
  );
  const form = el(
    'form',
    { class: 'card', novalidate: true },
    formError(),
    how,
    subjectFields,
    tokenFields,
    el('fieldset', {}, el('legend', {}, 'Scopes to request'), el('div', { class: 'scope-list', 'data-path': 'scopes' }, scopeBoxes)),
    el('div', { class: 'actions' }, el('button', { type: 'submit' }, 'Run the test')),
  );
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearErrors(form);
    const scopes = scopeBoxes.map((b) => b.querySelector('input')).filter((b) => b.checked).map((b) => b.value);
    const request = { appId: app.id, scopes };
    if (form.querySelector('[name=how]:checked').value === 'token') {
      request.token = token.value.trim();
    } else {
      const subject = {};
      if (user.value.trim()) subject.userId = user.value.trim();
      if (roles.value.trim()) subject.roles = splitList(roles.value);
      if (claims.value.trim()) {
        try {
          subject.claims = JSON.parse(claims.value);
        } catch (e) {
          return showErrors(form, new ApiFailure(400, { message: 'the claims are not valid JSON', details: [{ path: 'subject.claims', message: `The claims are not valid JSON: ${e.message}` }] }));
        }
      }
      request.subject = subject;
    }
    try {
      const out = await api('POST', '/v1/mgmt/decisions/simulate', request);
      result.replaceChildren(explanation(out, names));
    } catch (e) {
      result.replaceChildren();
      if (e.status === 401) return;
      // A token the API refuses is shown beside the token's field.
      if (request.token !== undefined && ['invalid_token', 'insufficient_scope'].includes(e.code)) e.details = [{ path: 'token', message: e.message }];
      showErrors(form, e);
    }
  });
  body.replaceChildren(el('h2', {}, 'Test a request'), form, result);
}

const REASONS = {
  open: 'the app has no enforcing policy, so every authenticated user is allowed',
  matched: 'an enforcing policy matched',
  noPolicyMatched: 'no enforcing policy matched',
  scopesNotAllowed: 'the matching policies do not allow every requested scope',
};

/** The simulator's answer: allow or deny, and why. */
function explanation(out, names) {
  const d = out.decision;
  const allowed = d.outcome === 'allow';
  const items = [
    el('p', { class: `verdict ${allowed ? 'allow' : 'deny'}` }, allowed ? 'Allowed' : 'Denied'),
    el('p', {}, `Why: ${REASONS[d.reason] || d.reason}.`),
    el('p', {}, `Evaluated as ${out.userId || 'an anonymous subject'} with roles ${out.roles.length ? out.roles.join(', ') : '(none)'} (${out.rolesSource}).`),
  ];
  if (d.allowedScopes !== undefined && d.allowedScopes !== null) items.push(el('p', {}, `Allowed scopes: ${d.allowedScopes === 'all' ? 'all' : d.allowedScopes.join(', ') || 'none'}.`));
  if (d.deniedScopes.length) items.push(el('p', {}, `Denied scopes: ${d.deniedScopes.join(', ')}.`));
  if (d.decidingPolicies?.length) items.push(el('p', {}, `Deciding policies: ${d.decidingPolicies.map((id) => names[id] || id).join(', ')}.`));
  if (d.policies?.length) {
    items.push(
      el('h3', {}, 'Each policy'),
      el(
        'ul',
        {},
        d.policies.map((p) => {
          const f = p.failedCondition;
          const failed = f
            ? ` — condition ${f.index + 1} failed: ${f.source === 'jwtClaims' ? `claim ${f.claim}` : 'userRoles'} ${f.operator}${f.value !== undefined ? ` ${JSON.stringify(f.value)}` : ''}${f.seen !== undefined ? `, seen ${JSON.stringify(f.seen)}` : ''} (${f.reason})`
            : '';
          return el('li', {}, `${p.name} (${p.mode}): ${p.matched ? 'matched' : 'did not match'}${failed}`);
        }),
      ),
    );
  }
  if (d.shadow) items.push(el('p', { class: 'hint' }, `With the shadow policies enforcing: ${d.shadow.outcome}.`));
  return el('div', { class: 'card', role: 'status' }, el('h3', {}, 'Result'), items);
}

// ----- Connections -----------------------------------------------------------------------------

async function tokensTab(app, body) {
  const message = el('div', { 'aria-live': 'polite' });
  const list = el('div');
  let listing = null;
  const reload = () => listing.reload();
  const act = async (label, fn) => {
    try {
      await fn();
      await reload();
      body.prepend(banner(label, 'ok'));
    } catch (e) {
      if (e.status !== 401) message.replaceChildren(banner(e.message));
    }
  };
  const owner = (c) => (c.userId ? `user ${c.userId}` : c.tenantId ? `tenant ${c.tenantId}` : c.owner);
  const row = (c) =>
    el(
      'tr',
      {},
      el('td', {}, owner(c)),
      el('td', {}, c.status),
      el('td', {}, c.scopes.join(', ') || '—'),
      el('td', {}, when(c.expiresAt)),
      el('td', {}, when(c.lastRefreshAt)),
      el('td', {}, c.lastRefreshError || '—'),
      el(
        'td',
        {},
        el('div', { class: 'actions' },
          c.hasRefreshToken
            ? el('button', { type: 'button', class: 'secondary', 'aria-label': `Force refresh the connection of ${owner(c)}`, onclick: () => act(`The connection of ${owner(c)} was refreshed.`, () => api('POST', `/v1/mgmt/connections/${enc(c.id)}/refresh`)) }, 'Force refresh')
            : null,
          el('button', {
            type: 'button',
            class: 'danger',
            'aria-label': `Revoke the connection of ${owner(c)}`,
            onclick: () => {
              if (window.confirm(`Revoke the connection of ${owner(c)}? The credential is deleted and revoked at the provider.`)) {
                act(`The connection of ${owner(c)} was revoked.`, () => api('DELETE', `/v1/mgmt/connections/${enc(c.id)}`));
              }
            },
          }, 'Revoke'),
        ),
      ),
    );
  body.replaceChildren(...[el('h2', {}, 'Connections'), message, list, app.type === 'apiKey' ? apiKeyForm(app, reload) : null].filter(Boolean));
  listing = await pagedList(
    list,
    `/v1/mgmt/outbound-apps/${enc(app.id)}/connections`,
    (items) => dataTable('Connections', ['Owner', 'Status', 'Scopes', 'Expires', 'Last refresh', 'Last error', ''], items.map(row), 'No connection is stored for this app.'),
    50,
  );
}

function apiKeyForm(app, reload) {
  const form = el(
    'form',
    { class: 'card', novalidate: true },
    formError(),
    field('API key', el('input', { type: 'password', name: 'apiKey', autocomplete: 'off' }), { path: 'apiKey' }),
    field('User id', input('userId'), { path: 'userId', hint: 'The user whose key it is (or give a tenant).' }),
    field('Tenant id', input('tenantId'), { path: 'tenantId' }),
    el('div', { class: 'actions' }, el('button', { type: 'submit' }, 'Upload the API key')),
  );
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const b = { apiKey: form.elements.apiKey.value };
    for (const k of ['userId', 'tenantId']) if (form.elements[k].value.trim()) b[k] = form.elements[k].value.trim();
    try {
      await api('POST', `/v1/mgmt/outbound-apps/${enc(app.id)}/api-keys`, b);
      form.elements.apiKey.value = '';
      await reload();
    } catch (e) {
      if (e.status !== 401) showErrors(form, e);
    }
  });
  return el('div', {}, el('h2', {}, 'Upload an API key'), form);
}

// ----- Settings --------------------------------------------------------------------------------

/** `name: description` lines for an app's scopes. */
const scopeLines = (scopes) => (scopes || []).map((sc) => (sc.description ? `${sc.name}: ${sc.description}` : sc.name)).join('\n');

/** Scopes from `name: description` lines (blank lines skipped). */
function parseScopeLines(text) {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .map((l) => {
      const cut = l.indexOf(':');
      if (cut < 0) return { name: l };
      const description = l.slice(cut + 1).trim();
      return description ? { name: l.slice(0, cut).trim(), description } : { name: l.slice(0, cut).trim() };
    });
}

/** `key=value` lines for an app's extra authorization parameters, and back. */
const paramLines = (params) => Object.entries(params || {}).map(([k, v]) => `${k}=${v}`).join('\n');
function parseParamLines(text) {
  const out = {};
  for (const line of text.split('\n').map((l) => l.trim()).filter(Boolean)) {
    const cut = line.indexOf('=');
    out[cut < 0 ? line : line.slice(0, cut).trim()] = cut < 0 ? '' : line.slice(cut + 1).trim();
  }
  return out;
}

/** The app's settings, edited in place (saved with PUT; the client secret is kept unless a new one is typed). */
function settingsTab(app, body) {
  const oauth = app.type === 'oauth';
  const text = (name, value, attrs = {}) => input(name, { value: value ?? '', ...attrs });
  const area = (name, value) => el('textarea', { name, spellcheck: 'false', rows: 4, value });
  const form = el(
    'form',
    { class: 'card', novalidate: true },
    formError(),
    field('Name', text('name', app.name, { required: true }), { path: 'name' }),
    field('Description', text('description', app.description), { path: 'description' }),
    field('Scopes', area('scopes', scopeLines(app.scopes)), { path: 'scopes', hint: 'One per line: name, or name: description. Policies may only name these.' }),
    field('Default scopes', text('defaultScopes', (app.defaultScopes || []).join(', ')), { path: 'defaultScopes', hint: 'Asked for when a request names none; comma-separated.' }),
    field('When no policy allows a request', select('onDeny', [['forbid', 'Refuse (403 access_denied)'], ['reconsent', 'Re-consent (403 consent_required with a link)']], app.onDeny || 'forbid'), { path: 'onDeny' }),
    field('Denial detail shown to callers', select('denialDetail', [['policies', 'Policies and failing conditions, without values'], ['full', 'Full: conditions with expected and seen values'], ['reason', 'Only the reason and the refused scopes']], app.denialDetail || 'policies'), { path: 'denialDetail' }),
    oauth
      ? el(
          'fieldset',
          {},
          el('legend', {}, 'OAuth settings'),
          field('Client ID', text('clientId', app.clientId), { path: 'clientId' }),
          field('Client secret', el('input', { type: 'password', name: 'clientSecret', autocomplete: 'new-password' }), {
            path: 'clientSecret',
            hint: app.hasClientSecret ? 'A secret is stored. Leave empty to keep it; type a new one to replace it.' : 'No secret is stored.',
          }),
          field('Authorization URL', text('authorizationUrl', app.authorizationUrl, { type: 'url' }), { path: 'authorizationUrl' }),
          field('Token URL', text('tokenUrl', app.tokenUrl, { type: 'url' }), { path: 'tokenUrl' }),
          field('Revocation URL', text('revocationUrl', app.revocationUrl, { type: 'url' }), { path: 'revocationUrl' }),
          field('Userinfo URL', text('userinfoUrl', app.userinfoUrl, { type: 'url' }), { path: 'userinfoUrl' }),
          field('Issuer', text('issuer', app.issuer), { path: 'issuer', hint: 'When set, the provider\'s redirect back must carry it as iss (RFC 9207).' }),
          field('Token endpoint authentication', select('tokenEndpointAuthMethod', [['client_secret_basic', 'client_secret_basic'], ['client_secret_post', 'client_secret_post'], ['none', 'none (public client)']], app.tokenEndpointAuthMethod || 'client_secret_basic'), { path: 'tokenEndpointAuthMethod' }),
          field('Extra authorization parameters', area('authorizationParams', paramLines(app.authorizationParams)), { path: 'authorizationParams', hint: 'One per line: key=value (for example access_type=offline).' }),
          checkbox('pkce', 'true', 'Use PKCE (S256)', app.pkce !== false),
          checkbox('narrowScopesOnRefresh', 'true', 'The provider narrows scopes on refresh', Boolean(app.narrowScopesOnRefresh)),
          checkbox('sharedCallback', 'true', 'Use the shared callback /v1/outbound/callback', Boolean(app.sharedCallback)),
        )
      : null,
    el('div', { class: 'actions' }, el('button', { type: 'submit' }, 'Save settings')),
  );
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearErrors(form);
    const v = (n) => form.elements[n].value.trim();
    const changes = {
      name: v('name'),
      description: v('description') || null,
      scopes: parseScopeLines(form.elements.scopes.value),
      defaultScopes: splitList(v('defaultScopes')),
      onDeny: v('onDeny'),
      denialDetail: v('denialDetail'),
    };
    if (oauth) {
      for (const k of ['clientId', 'authorizationUrl', 'tokenUrl', 'revocationUrl', 'userinfoUrl', 'issuer']) changes[k] = v(k) || null;
      if (v('clientSecret')) changes.clientSecret = v('clientSecret');
      changes.tokenEndpointAuthMethod = v('tokenEndpointAuthMethod');
      changes.authorizationParams = parseParamLines(form.elements.authorizationParams.value);
      for (const k of ['pkce', 'narrowScopesOnRefresh', 'sharedCallback']) changes[k] = form.querySelector(`[name=${k}]`).checked;
    }
    try {
      await saveApp(app, changes);
      await appPage(app.id, 'settings');
      main.querySelector('section')?.prepend(banner('The settings are saved.', 'ok'));
    } catch (e) {
      if (e.status !== 401) showErrors(form, e);
    }
  });
  const remove = el(
    'button',
    {
      type: 'button',
      class: 'danger',
      onclick: async () => {
        if (!window.confirm(`Delete the app "${app.name}", its policies and every stored connection?`)) return;
        try {
          await api('DELETE', `/v1/mgmt/outbound-apps/${enc(app.id)}`);
          location.hash = '#/apps';
        } catch (e) {
          if (e.status !== 401) body.prepend(banner(e.message));
        }
      },
    },
    'Delete this app',
  );
  body.replaceChildren(
    el('h2', {}, 'Settings'),
    el('p', { class: 'hint' }, `Type: ${oauth ? 'OAuth' : 'API key'} (it cannot change). Revision ${app.revision}, last changed ${when(app.updatedAt)}.`),
    form,
    el('h2', {}, 'Delete'),
    el('p', {}, remove),
  );
}

// ----- The audit log ---------------------------------------------------------------------------

const OUTCOMES = ['allowed', 'denied', 'consent_required', 'not_connected', 'invalid_token', 'invalid_request', 'error'];

async function auditPage() {
  document.title = 'Audit log · Portcullis console';
  const kind = select('kind', [['decision', 'Token decisions'], ['management', 'Management changes']], 'decision');
  const outcome = select('outcome', [['', 'Any'], ...OUTCOMES.map((o) => [o, o])], '');
  const since = input('since', { type: 'datetime-local' });
  const until = input('until', { type: 'datetime-local' });
  const results = el('div', { 'aria-live': 'polite' });
  const form = el(
    'form',
    { class: 'card', novalidate: true },
    formError(),
    field('Log', kind, { path: 'kind' }),
    field('App id', input('appId'), { path: 'appId', hint: 'For management changes: the target, e.g. outbound-apps/calendar.' }),
    field('User id', input('userId'), { path: 'userId', hint: 'For management changes: the actor (an admin key id).' }),
    field('Outcome', outcome, { path: 'outcome' }),
    field('Since', since, { path: 'since' }),
    field('Until', until, { path: 'until' }),
    el('div', { class: 'actions' }, el('button', { type: 'submit' }, 'Show events')),
  );
  const query = () => {
    const q = new URLSearchParams({ limit: '50', kind: kind.value });
    const appId = form.elements.appId.value.trim();
    const userId = form.elements.userId.value.trim();
    if (kind.value === 'management') {
      if (appId) q.set('target', appId);
      if (userId) q.set('actor', userId);
    } else {
      if (appId) q.set('appId', appId);
      if (userId) q.set('userId', userId);
      if (outcome.value) q.set('outcome', outcome.value);
    }
    if (since.value) q.set('since', new Date(since.value).toISOString());
    if (until.value) q.set('until', new Date(until.value).toISOString());
    return q;
  };
  const load = async (cursors) => {
    clearErrors(form);
    const q = query();
    const cursor = cursors[cursors.length - 1];
    if (cursor) q.set('cursor', cursor);
    try {
      const page = await api('GET', `/v1/mgmt/audit?${q}`);
      const pager = el('div', { class: 'pager' });
      if (cursors.length) pager.append(el('button', { type: 'button', class: 'secondary', onclick: () => load(cursors.slice(0, -1)) }, 'Previous page'));
      if (page.nextCursor) pager.append(el('button', { type: 'button', class: 'secondary', onclick: () => load([...cursors, page.nextCursor]) }, 'Next page'));
      results.replaceChildren(q.get('kind') === 'management' ? managementTable(page.items) : decisionTable(page.items), pager);
    } catch (e) {
      if (e.status !== 401) showErrors(form, e);
    }
  };
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    load([]);
  });
  main.replaceChildren(el('h1', {}, 'Audit log'), form, results);
  await load([]);
}

function decisionTable(items) {
  if (!items.length) return el('p', {}, 'No event matches.');
  return el(
    'table',
    {},
    el('caption', {}, 'Token decisions'),
    el('thead', {}, el('tr', {}, ['When', 'Action', 'App', 'User', 'Outcome', 'Requested', 'Granted', 'Reason'].map((h) => el('th', { scope: 'col' }, h)))),
    el(
      'tbody',
      {},
      items.map((e) =>
        el('tr', {},
          el('td', {}, when(e.at)),
          el('td', {}, e.action),
          el('td', {}, e.appId || '—'),
          el('td', {}, e.userId || '—'),
          el('td', {}, e.outcome),
          el('td', {}, e.requestedScopes.join(', ') || '—'),
          el('td', {}, e.grantedScopes.join(', ') || '—'),
          el('td', {}, e.reason || '—'),
        ),
      ),
    ),
  );
}

function managementTable(items) {
  if (!items.length) return el('p', {}, 'No change matches.');
  return el(
    'table',
    {},
    el('caption', {}, 'Management changes'),
    el('thead', {}, el('tr', {}, ['When', 'Actor', 'Action', 'Target'].map((h) => el('th', { scope: 'col' }, h)))),
    el(
      'tbody',
      {},
      items.map((e) =>
        el('tr', {},
          el('td', {}, when(e.at)),
          el('td', {}, `${e.actorName} (${e.actorId})`),
          el('td', {}, e.action),
          el('td', {}, el('code', {}, e.target)),
        ),
      ),
    ),
  );
}

// ----- Start -----------------------------------------------------------------------------------

state.onSignedOut = showSignIn;
document.getElementById('sign-out').addEventListener('click', signOut);
window.addEventListener('hashchange', route);

/** On load: a session this browser already holds (its CSRF token comes back with it), else sign in. */
async function start() {
  try {
    const resp = await fetch('/console/session', { credentials: 'same-origin', cache: 'no-store' });
    state.session = resp.ok ? await resp.json() : null;
  } catch {
    state.session = null;
  }
  route();
}

start();
