// The console's MCP servers (protected resources) and their OAuth clients, single sign-on
// connections with their role-mapping rules, and admin keys.
//
// Routes: #/servers, #/servers/new, #/servers/{id}, #/servers/{id}/edit; the same for #/clients
// and #/sso; #/admin-keys. Secrets (a client's secret, a new admin key) come from the API once,
// right after they are made: they are shown once in a marked box and kept nowhere else (a stored
// secret is never put in a form). Text always goes in as text.

import {
  ApiFailure, api, banner, button, checkbox, dangerButton, dataTable, details, el, enc, field, flashNext,
  formError, go, guarded, input, listAll, messages, nextId, pagedList, refused, rowsEditor, select, setPath,
  show, showErrors, splitList, state, takeFlash, title, when,
} from './ui.js';

// ----- Shared pieces ---------------------------------------------------------------------------

/** A secret just issued, for the page the console goes to next: `{kind, id, secret}`. */
let pendingSecret = null;
const takeSecret = (kind, id) => {
  const s = pendingSecret;
  pendingSecret = null;
  return s && s.kind === kind && s.id === id ? s.secret : null;
};

/** The id of the admin key this console session acts as (none for a user's session). */
function sessionKeyId() {
  const s = state.session;
  return s && s.kind === 'key' ? s.actorId : null;
}

/**
 * A secret shown once, in a marked box: a read-only field to copy it from, a Copy button, and a
 * button that hides it.
 */
function secretBox(heading, label, secret, what) {
  const headingId = nextId('secret');
  const value = el('input', { type: 'text', name: 'newSecret', readonly: true, value: secret, spellcheck: 'false', autocomplete: 'off', class: 'secret-value' });
  const status = el('span', { role: 'status', class: 'muted' });
  const box = el(
    'section',
    { class: 'secret-box', 'aria-labelledby': headingId },
    el('h2', { id: headingId }, heading),
    el('p', {}, el('strong', {}, 'Copy it now: it will not be shown again. '), `Only its hash is stored, so nobody can read it back; if it is lost, ${what}.`),
    field(label, value),
    el(
      'div',
      { class: 'actions' },
      button('Copy', async () => {
        value.select();
        try {
          await navigator.clipboard.writeText(secret);
          status.textContent = 'Copied to the clipboard.';
        } catch {
          status.textContent = 'Selected: press Ctrl+C (⌘C) to copy it.';
        }
      }),
      button('I have stored it: hide it', () => box.remove()),
      status,
    ),
  );
  return box;
}

const codeList = (items) => (items.length ? el('ul', { class: 'plain' }, items.map((i) => el('li', {}, el('code', {}, i)))) : '—');

/** A group of checkboxes that answers for one API path (`grantTypes`, `scopes`). */
function checkGroup(legend, path, options, checked = [], hint) {
  const id = nextId('group');
  const error = el('p', { class: 'field-error', id: `${id}-error`, hidden: true });
  const boxes = options.map(([v, l]) => checkbox(path, v, l, checked.includes(v)));
  const node = el(
    'fieldset',
    { id, 'data-path': path, tabindex: '-1', 'aria-describedby': error.id },
    el('legend', {}, legend),
    hint ? el('p', { class: 'hint' }, hint) : null,
    el('div', { class: 'check-list' }, boxes),
    error,
  );
  return { node, values: () => boxes.map((b) => b.querySelector('input')).filter((b) => b.checked).map((b) => b.value) };
}

// ----- MCP servers (resources) -----------------------------------------------------------------

const FETCH_SCOPE = 'outbound.token.fetch';

async function serversList() {
  title('MCP servers');
  const list = el('div');
  show(
    el('h1', {}, 'MCP servers'),
    takeFlash(),
    el('p', {}, 'The resource servers Portcullis issues tokens for: a token\'s audience is its server\'s URI, and its scopes are among those the server offers.'),
    el('p', {}, el('a', { href: '#/servers/new' }, 'Register an MCP server')),
    list,
  );
  await pagedList(list, '/v1/mgmt/resources', (items) =>
    dataTable(
      'Registered MCP servers',
      ['Name', 'Resource URI', 'Scopes'],
      items.map((r) =>
        el(
          'tr',
          {},
          el('td', {}, el('a', { href: `#/servers/${enc(r.id)}` }, r.name)),
          el('td', {}, el('code', {}, r.uri)),
          el('td', {}, r.scopes.map((s) => s.name).join(', ') || '—'),
        ),
      ),
      'No MCP server is registered yet.',
    ),
  );
}

/** A row of the scopes editor: a scope's name and description. */
function scopeRow(i, draft, onRemove) {
  const name = input('scopeName', { value: draft?.name || '', spellcheck: 'false' });
  const description = input('scopeDescription', { value: draft?.description || '' });
  const row = el(
    'div',
    { class: 'condition', role: 'group', 'aria-label': `Scope ${i + 1}` },
    field('Scope name', name, { path: `scopes[${i}].name` }),
    field('Scope description', description, { path: `scopes[${i}].description` }),
    el('div', { class: 'row-actions' }, el('button', { type: 'button', class: 'secondary', 'aria-label': `Remove scope ${i + 1}`, onclick: onRemove }, 'Remove')),
  );
  row.draft = () => ({ name: name.value.trim(), description: description.value.trim() });
  row.read = () => {
    const d = row.draft();
    if (!d.name && !d.description) return null;
    return d.description ? d : { name: d.name };
  };
  row.index = (k) => {
    setPath(name, k === null ? null : `scopes[${k}].name`);
    setPath(description, k === null ? null : `scopes[${k}].description`);
  };
  return row;
}

/** The form registering (no `current`) or replacing an MCP server. */
function serverForm(current) {
  const name = input('name', { value: current?.name || '' });
  const id = input('id', { value: current?.id || '', readonly: current ? true : undefined, spellcheck: 'false' });
  const uri = input('uri', { type: 'url', value: current?.uri || '', spellcheck: 'false' });
  const description = el('textarea', { name: 'description', rows: '3' }, current?.description || '');
  const scopes = rowsEditor({
    legend: 'Scopes',
    hint: `The scopes the server's tools need, each with what it grants in words (shown on the consent screen). ${FETCH_SCOPE} is always offered and added when absent.`,
    path: 'scopes',
    addText: 'Add scope',
    makeRow: scopeRow,
    drafts: current ? current.scopes : [null],
  });
  const form = el(
    'form',
    { class: 'card', novalidate: true },
    formError(),
    field('Name', name, { path: 'name', hint: 'Shown to users on the consent screen.' }),
    field('Id', id, { path: 'id', hint: current ? 'It cannot change.' : 'A slug used in URLs (letters, digits, -, _ and .); it cannot change.' }),
    field('Resource URI', uri, { path: 'uri', hint: 'The server\'s canonical URI, the audience of its tokens: https://, no query, no fragment (for example https://mcp.example.com/mcp).' }),
    field('Description', description, { path: 'description' }),
    scopes.node,
    el(
      'div',
      { class: 'actions' },
      el('button', { type: 'submit' }, current ? 'Save changes' : 'Register server'),
      el('a', { href: current ? `#/servers/${enc(current.id)}` : '#/servers' }, 'Cancel'),
    ),
  );
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const body = { id: id.value.trim(), uri: uri.value.trim(), name: name.value.trim(), scopes: scopes.read() };
    if (description.value.trim()) body.description = description.value.trim();
    // A 400 names its field in `details`; a conflict is the id (or, on a change, the URI).
    const guess = (e) => (e.code === 'already_exists' ? (current ? 'uri' : 'id') : null);
    try {
      const saved = current
        ? await api('PUT', `/v1/mgmt/resources/${enc(current.id)}`, body)
        : await api('POST', '/v1/mgmt/resources', body);
      flashNext(current ? `The MCP server "${saved.name}" is saved.` : `The MCP server "${saved.name}" is registered.`);
      go(`#/servers/${enc(saved.id)}`);
    } catch (e) {
      refused(form, e, guess);
    }
  });
  return { form, focus: () => name.focus() };
}

function newServerPage() {
  title('Register an MCP server');
  const { form, focus } = serverForm(null);
  show(el('p', {}, el('a', { href: '#/servers' }, '← All MCP servers')), el('h1', {}, 'Register an MCP server'), form);
  focus();
}

async function editServerPage(id) {
  const r = await api('GET', `/v1/mgmt/resources/${enc(id)}`);
  title(`Edit ${r.name}`);
  const { form } = serverForm(r);
  show(el('p', {}, el('a', { href: `#/servers/${enc(r.id)}` }, `← ${r.name}`)), el('h1', {}, `Edit ${r.name}`), form);
}

/** Where RFC 9728 puts a resource's metadata: the well-known path before the URI's path. */
function wellKnown(uri) {
  try {
    const u = new URL(uri);
    return `${u.origin}/.well-known/oauth-protected-resource${u.pathname === '/' ? '' : u.pathname}`;
  } catch {
    return null;
  }
}

async function serverPage(id) {
  const r = await api('GET', `/v1/mgmt/resources/${enc(id)}`);
  const metadataPath = `/v1/mgmt/resources/${enc(r.id)}/metadata`;
  let metadata = null;
  try {
    metadata = await api('GET', metadataPath);
  } catch (e) {
    if (e.status === 401) throw e;
  }
  title(r.name);
  const msg = messages();
  const scopesTable = dataTable(
    'Scopes offered',
    ['Scope', 'What it grants'],
    r.scopes.map((s) => el('tr', {}, el('td', {}, el('code', {}, s.name)), el('td', {}, s.description || '—'))),
    'This server offers no scope.',
  );
  show(
    el('p', {}, el('a', { href: '#/servers' }, '← All MCP servers')),
    el('h1', {}, r.name, ' ', el('span', { class: 'muted' }, `(${r.id})`)),
    takeFlash(),
    msg,
    details([
      ['Resource URI', el('code', {}, r.uri)],
      ['Description', r.description],
      ['Registered', when(r.createdAt)],
      ['Last changed', when(r.updatedAt)],
    ]),
    scopesTable,
    el('h2', {}, 'Clients'),
    el(
      'p',
      {},
      'Clients are registered for the whole deployment, not for one server: a client asks for a token for this server by sending ',
      el('code', {}, `resource=${r.uri}`),
      ' to the token endpoint (client credentials) or the authorization endpoint. ',
      el('a', { href: '#/clients' }, 'See the clients'),
      ' or ',
      el('a', { href: '#/clients/new' }, 'register a client'),
      '.',
    ),
    el('h2', {}, 'Protected resource metadata'),
    el(
      'p',
      {},
      'The RFC 9728 document this server serves (or a proxy in front of it serves) at ',
      el('code', {}, wellKnown(r.uri) || '/.well-known/oauth-protected-resource'),
      ', naming Portcullis as its authorization server. ',
      el('a', { href: metadataPath }, `Open the metadata of ${r.name} as JSON`),
      '.',
    ),
    metadata ? el('pre', { class: 'json card' }, JSON.stringify(metadata, null, 2)) : null,
    el(
      'div',
      { class: 'actions' },
      el('a', { href: `#/servers/${enc(r.id)}/edit`, class: 'button-link' }, `Edit ${r.name}`),
      dangerButton('Delete', `Delete MCP server ${r.name}`, `Delete the MCP server "${r.name}"? No token is issued for it any more.`, async () => {
        try {
          await api('DELETE', `/v1/mgmt/resources/${enc(r.id)}`);
          flashNext(`The MCP server "${r.name}" was deleted.`);
          go('#/servers');
        } catch (e) {
          if (e.status !== 401) msg.replaceChildren(banner(e.message));
        }
      }),
    ),
  );
}

// ----- Clients ---------------------------------------------------------------------------------

const GRANTS = [
  ['authorization_code', 'Authorization code (users sign in; needs a redirect URI)'],
  ['refresh_token', 'Refresh token'],
  ['client_credentials', 'Client credentials (the client acts as itself)'],
  ['urn:ietf:params:oauth:grant-type:token-exchange', 'Token exchange (fetch outbound apps\' tokens)'],
  ['urn:ietf:params:oauth:grant-type:jwt-bearer', 'JWT bearer (an enterprise issuer\'s ID-JAG)'],
];
const grantName = (g) => ({ 'urn:ietf:params:oauth:grant-type:token-exchange': 'token exchange', 'urn:ietf:params:oauth:grant-type:jwt-bearer': 'jwt-bearer' })[g] || g;

const AUTH_METHODS = [
  ['client_secret_basic', 'Confidential: a secret sent with HTTP Basic (client_secret_basic)'],
  ['client_secret_post', 'Confidential: a secret sent in the form (client_secret_post)'],
  ['none', 'Public: no secret, PKCE only (none)'],
];
const isPublic = (c) => c.tokenEndpointAuthMethod === 'none';

async function clientsList() {
  title('Clients');
  const list = el('div');
  show(
    el('h1', {}, 'Clients'),
    takeFlash(),
    el('p', {}, 'The OAuth clients allowed to ask Portcullis for tokens: MCP clients (authorization code), services (client credentials) and MCP servers fetching outbound tokens (token exchange).'),
    el('p', {}, el('a', { href: '#/clients/new' }, 'Register a client')),
    list,
  );
  await pagedList(list, '/v1/mgmt/clients', (items) =>
    dataTable(
      'Registered clients',
      ['Name', 'Client ID', 'Type', 'Grant types', 'Registered'],
      items.map((c) =>
        el(
          'tr',
          {},
          el('td', {}, el('a', { href: `#/clients/${enc(c.id)}` }, c.name)),
          el('td', {}, el('code', {}, c.id)),
          el('td', {}, isPublic(c) ? 'Public' : 'Confidential'),
          el('td', {}, c.grantTypes.map(grantName).join(', ')),
          el('td', {}, when(c.createdAt)),
        ),
      ),
      'No client is registered yet.',
    ),
  );
}

function redirectRow(i, draft, onRemove) {
  const uri = input('redirectUri', { type: 'url', value: draft || '', spellcheck: 'false' });
  const row = el(
    'div',
    { class: 'condition' },
    field(`Redirect URI ${i + 1}`, uri, { path: `redirectUris[${i}]` }),
    el('div', { class: 'row-actions' }, el('button', { type: 'button', class: 'secondary', 'aria-label': `Remove redirect URI ${i + 1}`, onclick: onRemove }, 'Remove')),
  );
  row.draft = () => uri.value.trim();
  row.read = () => row.draft() || null;
  row.index = (k) => setPath(uri, k === null ? null : `redirectUris[${k}]`);
  return row;
}

/** The form registering (no `current`) or replacing a client; `apps` are the outbound apps. */
function clientForm(current, apps) {
  const name = input('name', { value: current?.name || '' });
  const id = input('id', { value: current?.id || '', readonly: current ? true : undefined, spellcheck: 'false' });
  // A client does not change between public and confidential: an edit offers its own kind only.
  const methods = current ? AUTH_METHODS.filter(([m]) => (m === 'none') === isPublic(current)) : AUTH_METHODS;
  const method = select('tokenEndpointAuthMethod', methods, current?.tokenEndpointAuthMethod || 'client_secret_basic');
  const redirects = rowsEditor({
    legend: 'Redirect URIs',
    hint: 'Where users come back after signing in, matched exactly: https://, http:// on a loopback address (any port), or a native app\'s private-use scheme (com.example.app:/callback); no fragment.',
    path: 'redirectUris',
    addText: 'Add redirect URI',
    makeRow: redirectRow,
    drafts: current?.redirectUris?.length ? current.redirectUris : [null],
  });
  const grants = checkGroup(
    'Grant types',
    'grantTypes',
    GRANTS,
    current ? current.grantTypes : [],
    'None checked: the authorization code flow and refresh tokens when there is a redirect URI, token exchange otherwise. A public client cannot use client credentials, token exchange or jwt-bearer.',
  );
  const restricted = Boolean(current?.allowedApps);
  const appsMode = select('appsMode', [['all', 'Every outbound app'], ['some', 'Only the apps checked below']], restricted ? 'some' : 'all');
  const appBoxes = apps.map((a) => checkbox('allowedApps', a.id, `${a.name} (${a.id})`, Boolean(current?.allowedApps?.includes(a.id))));
  const appList = el('div', { class: 'check-list', hidden: !restricted }, appBoxes.length ? appBoxes : el('p', { class: 'hint' }, 'No outbound app is registered.'));
  appsMode.addEventListener('change', () => {
    appList.hidden = appsMode.value !== 'some';
  });
  const form = el(
    'form',
    { class: 'card', novalidate: true },
    formError(),
    field('Name', name, { path: 'name', hint: 'Shown to users on the consent screen.' }),
    field('Client ID', id, { path: 'id', hint: current ? 'It cannot change.' : 'Optional: a slug (letters, digits, -, _ and .); one is generated when empty. It cannot change.' }),
    field('Client type', method, { path: 'tokenEndpointAuthMethod', hint: current ? 'A client cannot change between public and confidential: register a new one.' : 'A confidential client gets a secret, shown once.' }),
    redirects.node,
    grants.node,
    el(
      'fieldset',
      {},
      el('legend', {}, 'Outbound apps (token exchange)'),
      field('Outbound apps it may fetch tokens for', appsMode, { path: 'allowedApps' }),
      appList,
    ),
    el(
      'div',
      { class: 'actions' },
      el('button', { type: 'submit' }, current ? 'Save changes' : 'Register client'),
      el('a', { href: current ? `#/clients/${enc(current.id)}` : '#/clients' }, 'Cancel'),
    ),
  );
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const body = { name: name.value.trim(), tokenEndpointAuthMethod: method.value };
    if (id.value.trim()) body.id = id.value.trim();
    const uris = redirects.read();
    if (uris.length) body.redirectUris = uris;
    const g = grants.values();
    if (g.length) body.grantTypes = g;
    if (appsMode.value === 'some') body.allowedApps = appBoxes.map((b) => b.querySelector('input')).filter((b) => b.checked).map((b) => b.value);
    // A 400 names its field in `details`; a conflict is the id.
    const guess = (e) => (e.code === 'already_exists' ? 'id' : null);
    try {
      if (current) {
        const saved = await api('PUT', `/v1/mgmt/clients/${enc(current.id)}`, body);
        flashNext(`The client "${saved.name}" is saved.`);
        go(`#/clients/${enc(saved.id)}`);
      } else {
        const created = await api('POST', '/v1/mgmt/clients', body);
        flashNext(`The client "${created.name}" is registered.`);
        if (created.clientSecret) pendingSecret = { kind: 'client', id: created.id, secret: created.clientSecret };
        go(`#/clients/${enc(created.id)}`);
      }
    } catch (e) {
      refused(form, e, guess);
    }
  });
  return { form, focus: () => name.focus() };
}

/** The outbound apps a client may be restricted to (none listed when they cannot be read). */
async function outboundApps() {
  try {
    return await listAll('/v1/mgmt/outbound-apps', 1000);
  } catch (e) {
    if (e.status === 401) throw e;
    return [];
  }
}

async function newClientPage() {
  const apps = await outboundApps();
  title('Register a client');
  const { form, focus } = clientForm(null, apps);
  show(el('p', {}, el('a', { href: '#/clients' }, '← All clients')), el('h1', {}, 'Register a client'), form);
  focus();
}

async function editClientPage(id) {
  const [c, apps] = await Promise.all([api('GET', `/v1/mgmt/clients/${enc(id)}`), outboundApps()]);
  title(`Edit ${c.name}`);
  const { form } = clientForm(c, apps);
  show(el('p', {}, el('a', { href: `#/clients/${enc(c.id)}` }, `← ${c.name}`)), el('h1', {}, `Edit ${c.name}`), form);
}

const clientSecretBox = (secret) => secretBox('The client secret', 'Client secret (shown once)', secret, 'rotate the secret to get a new one');

async function clientPage(id) {
  const secret = takeSecret('client', id);
  const c = await api('GET', `/v1/mgmt/clients/${enc(id)}`);
  title(c.name);
  const msg = messages();
  const secretSlot = el('div', {}, secret ? clientSecretBox(secret) : null);
  const rotate = isPublic(c)
    ? null
    : el('button', {
        type: 'button',
        class: 'secondary',
        'aria-label': `Rotate secret of client ${c.name}`,
        onclick: async () => {
          if (!window.confirm(`Issue a new secret for "${c.name}"? The current secret stops working at once.`)) return;
          try {
            const out = await api('POST', `/v1/mgmt/clients/${enc(c.id)}/secret`);
            msg.replaceChildren(banner(`A new secret was issued for "${c.name}"; the old one no longer works.`, 'ok'));
            secretSlot.replaceChildren(clientSecretBox(out.clientSecret));
            secretSlot.querySelector('input')?.focus();
          } catch (e) {
            if (e.status !== 401) msg.replaceChildren(banner(e.message));
          }
        },
      }, 'Rotate secret');
  show(
    el('p', {}, el('a', { href: '#/clients' }, '← All clients')),
    el('h1', {}, c.name, ' ', el('span', { class: 'muted' }, `(${c.id})`)),
    takeFlash(),
    msg,
    secretSlot,
    details([
      ['Client ID', el('code', {}, c.id)],
      ['Type', isPublic(c) ? 'Public (no secret; PKCE)' : 'Confidential'],
      ['Token endpoint authentication', el('code', {}, c.tokenEndpointAuthMethod)],
      ['Grant types', codeList(c.grantTypes)],
      ['Redirect URIs', codeList(c.redirectUris)],
      ['Outbound apps', c.allowedApps ? codeList(c.allowedApps) : 'Every outbound app'],
      ['Token endpoint', el('code', {}, `${location.origin}/oauth2/token`)],
      ['Registered', when(c.createdAt)],
      ['Last changed', when(c.updatedAt)],
    ]),
    el(
      'div',
      { class: 'actions' },
      el('a', { href: `#/clients/${enc(c.id)}/edit`, class: 'button-link' }, `Edit ${c.name}`),
      rotate,
      dangerButton('Delete', `Delete client ${c.name}`, `Delete the client "${c.name}"? It can no longer get tokens.`, async () => {
        try {
          await api('DELETE', `/v1/mgmt/clients/${enc(c.id)}`);
          flashNext(`The client "${c.name}" was deleted.`);
          go('#/clients');
        } catch (e) {
          if (e.status !== 401) msg.replaceChildren(banner(e.message));
        }
      }),
    ),
  );
}

// ----- SSO connections -------------------------------------------------------------------------

async function ssoList() {
  title('SSO connections');
  const list = el('div');
  show(
    el('h1', {}, 'SSO connections'),
    takeFlash(),
    el('p', {}, 'The OpenID providers users sign in with ("Sign in with …" on the sign-in page), and the rules giving them roles from the provider\'s claims.'),
    el('p', {}, el('a', { href: '#/sso/new' }, 'Add an SSO connection')),
    list,
  );
  await pagedList(list, '/v1/mgmt/sso-connections', (items) =>
    dataTable(
      'SSO connections',
      ['Name', 'Id', 'Issuer', 'Client ID', 'Rules'],
      items.map((s) =>
        el(
          'tr',
          {},
          el('td', {}, el('a', { href: `#/sso/${enc(s.id)}` }, s.name)),
          el('td', {}, el('code', {}, s.id)),
          el('td', {}, el('code', {}, s.issuer)),
          el('td', {}, el('code', {}, s.clientId)),
          el('td', {}, String(s.mappings.length)),
        ),
      ),
      'No SSO connection is set up yet.',
    ),
  );
}

/** One role-mapping rule: when the claim holds the value, the user holds the roles (in the tenant). */
function ruleRow(lists) {
  return (i, draft, onRemove) => {
    const claim = input('claim', { value: draft?.claim || '', spellcheck: 'false' });
    const value = input('value', { value: draft?.value || '', spellcheck: 'false' });
    const roles = input('roles', { value: (draft?.roles || []).join(', '), list: lists.roles });
    const tenant = input('tenant', { value: draft?.tenant || '', list: lists.tenants, spellcheck: 'false' });
    const row = el(
      'div',
      { class: 'condition', role: 'group', 'aria-label': `Rule ${i + 1}` },
      field('Claim', claim, { path: `mappings[${i}].claim` }),
      field('Value', value, { path: `mappings[${i}].value` }),
      field('Roles', roles, { path: `mappings[${i}].roles` }),
      field('Tenant', tenant, { path: `mappings[${i}].tenant` }),
      el('div', { class: 'row-actions' }, el('button', { type: 'button', class: 'secondary', 'aria-label': `Remove rule ${i + 1}`, onclick: onRemove }, 'Remove')),
    );
    row.draft = () => {
      const d = { claim: claim.value.trim(), value: value.value.trim(), roles: splitList(roles.value) };
      if (tenant.value.trim()) d.tenant = tenant.value.trim();
      return d;
    };
    row.read = () => {
      const d = row.draft();
      return !d.claim && !d.value && !d.roles.length && !d.tenant ? null : d;
    };
    row.index = (k) => {
      for (const [c, n] of [[claim, 'claim'], [value, 'value'], [roles, 'roles'], [tenant, 'tenant']]) setPath(c, k === null ? null : `mappings[${k}].${n}`);
    };
    return row;
  };
}

/** The names of the roles and the ids of the tenants (for the rules' suggestions). */
async function rolesAndTenants() {
  const read = async (path) => {
    try {
      return await listAll(path, 1000);
    } catch (e) {
      if (e.status === 401) throw e;
      return [];
    }
  };
  const [roles, tenants] = await Promise.all([read('/v1/mgmt/roles'), read('/v1/mgmt/tenants')]);
  return { roles: roles.map((r) => r.name), tenants: tenants.map((t) => t.id) };
}

const listText = (text) => text.split(/[\s,]+/).map((s) => s.trim()).filter(Boolean);

/** The form adding (no `current`) or replacing an SSO connection. */
function ssoForm(current, known) {
  const name = input('name', { value: current?.name || '' });
  const id = input('id', { value: current?.id || '', readonly: current ? true : undefined, spellcheck: 'false' });
  const issuer = input('issuer', { type: 'url', value: current?.issuer || '', spellcheck: 'false' });
  const clientId = input('clientId', { value: current?.clientId || '', spellcheck: 'false' });
  // Write-only: never filled in; left empty on an edit, the stored secret stays.
  const clientSecret = el('input', { type: 'password', name: 'clientSecret', autocomplete: 'new-password', spellcheck: 'false' });
  const scopes = input('scopes', { value: (current?.scopes || ['openid', 'email', 'profile']).join(' '), spellcheck: 'false' });
  const claims = input('claims', { value: (current?.claims || []).join(', '), spellcheck: 'false' });
  const provision = checkbox('provision', 'yes', 'Create the user at their first sign-in', current ? current.provision : true);
  const rolesList = el('datalist', { id: nextId('roles') }, known.roles.map((r) => el('option', { value: r })));
  const tenantsList = el('datalist', { id: nextId('tenants') }, known.tenants.map((t) => el('option', { value: t })));
  const rules = rowsEditor({
    legend: 'Role-mapping rules',
    hint: `At every sign-in, each rule whose claim (groups, roles, or a dotted path such as realm_access.roles) holds the value (equals it, or is a list holding it) gives its roles, comma-separated, which must exist${known.roles.length ? ` (${known.roles.join(', ')})` : ''}: across the deployment, or in the tenant when one is named (the user then becomes its member).`,
    path: 'mappings',
    addText: 'Add rule',
    makeRow: ruleRow({ roles: rolesList.id, tenants: tenantsList.id }),
    drafts: current?.mappings?.length ? current.mappings : [null],
  });
  const secretHint = current
    ? `${current.hasClientSecret ? 'A secret is stored.' : 'No secret is stored.'} Leave empty to keep it; a value replaces it. It is never shown.`
    : 'Portcullis\'s client secret at the provider (write-only: sealed, never shown again).';
  const form = el(
    'form',
    { class: 'card', novalidate: true },
    formError(),
    field('Name', name, { path: 'name', hint: 'The sign-in button says "Sign in with {name}".' }),
    field('Id', id, { path: 'id', hint: current ? 'It cannot change.' : 'A slug (letters, digits, -, _ and .); it cannot change.' }),
    field('Issuer', issuer, { path: 'issuer', hint: 'The provider\'s exact issuer; its discovery document is at {issuer}/.well-known/openid-configuration.' }),
    field('Client ID', clientId, { path: 'clientId', hint: 'Portcullis\'s client id at the provider.' }),
    field('Client secret', clientSecret, { path: 'clientSecret', hint: secretHint }),
    field('Scopes', scopes, { path: 'scopes', hint: 'Space- or comma-separated; openid is always asked for.' }),
    field('Claims to copy', claims, { path: 'claims', hint: 'Optional, comma-separated: id_token claims copied to the user and carried by access tokens (department, employee_id…).' }),
    el('div', { class: 'field' }, provision),
    rules.node,
    rolesList,
    tenantsList,
    el(
      'div',
      { class: 'actions' },
      el('button', { type: 'submit' }, current ? 'Save changes' : 'Add connection'),
      el('a', { href: current ? `#/sso/${enc(current.id)}` : '#/sso' }, 'Cancel'),
    ),
  );
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const body = {
      id: id.value.trim(),
      name: name.value.trim(),
      issuer: issuer.value.trim(),
      clientId: clientId.value.trim(),
      scopes: listText(scopes.value),
      provision: provision.querySelector('input').checked,
      mappings: rules.read(),
      claims: splitList(claims.value),
    };
    if (clientSecret.value) body.clientSecret = clientSecret.value;
    // A 400 names its field in `details`.
    const guess = (e) => {
      // A rule naming a role or tenant that does not exist (`details: {entity, id}`).
      const ref = e.details && !Array.isArray(e.details) ? e.details : null;
      if (e.code === 'unknown_reference' && ref) {
        const i = body.mappings.findIndex((m) => (ref.entity === 'tenant' ? m.tenant === ref.id : m.roles.includes(ref.id)));
        if (i >= 0) return `mappings[${i}].${ref.entity === 'tenant' ? 'tenant' : 'roles'}`;
      }
      if (e.code === 'already_exists') return 'id';
      return null;
    };
    try {
      const saved = current
        ? await api('PUT', `/v1/mgmt/sso-connections/${enc(current.id)}`, body)
        : await api('POST', '/v1/mgmt/sso-connections', body);
      clientSecret.value = '';
      flashNext(current ? `The SSO connection "${saved.name}" is saved.` : `The SSO connection "${saved.name}" is added.`);
      go(`#/sso/${enc(saved.id)}`);
    } catch (e) {
      refused(form, e, guess);
    }
  });
  return { form, focus: () => name.focus() };
}

async function newSsoPage() {
  const known = await rolesAndTenants();
  title('Add an SSO connection');
  const { form, focus } = ssoForm(null, known);
  show(el('p', {}, el('a', { href: '#/sso' }, '← All SSO connections')), el('h1', {}, 'Add an SSO connection'), form);
  focus();
}

async function editSsoPage(id) {
  const [s, known] = await Promise.all([api('GET', `/v1/mgmt/sso-connections/${enc(id)}`), rolesAndTenants()]);
  title(`Edit ${s.name}`);
  const { form } = ssoForm(s, known);
  show(el('p', {}, el('a', { href: `#/sso/${enc(s.id)}` }, `← ${s.name}`)), el('h1', {}, `Edit ${s.name}`), form);
}

async function ssoPage(id) {
  const s = await api('GET', `/v1/mgmt/sso-connections/${enc(id)}`);
  title(s.name);
  const msg = messages();
  show(
    el('p', {}, el('a', { href: '#/sso' }, '← All SSO connections')),
    el('h1', {}, s.name, ' ', el('span', { class: 'muted' }, `(${s.id})`)),
    takeFlash(),
    msg,
    details([
      ['Issuer', el('code', {}, s.issuer)],
      ['Client ID', el('code', {}, s.clientId)],
      ['Client secret', s.hasClientSecret ? 'Stored (never shown)' : 'None'],
      ['Redirect URI to register at the provider', el('code', {}, `${location.origin}/oauth2/sso/callback`)],
      ['Scopes', s.scopes.join(' ')],
      ['First sign-in', s.provision ? 'Creates the user' : 'Only users who already exist'],
      ['Claims copied', s.claims.join(', ')],
      ['Created', when(s.createdAt)],
      ['Last changed', when(s.updatedAt)],
    ]),
    dataTable(
      'Role-mapping rules',
      ['Claim', 'Value', 'Roles', 'Tenant'],
      s.mappings.map((m) =>
        el('tr', {}, el('td', {}, el('code', {}, m.claim)), el('td', {}, el('code', {}, m.value)), el('td', {}, m.roles.join(', ') || '—'), el('td', {}, m.tenant || 'Deployment-wide')),
      ),
      'No role-mapping rule: users signing in with this connection get no role from it.',
    ),
    el(
      'div',
      { class: 'actions' },
      el('a', { href: `#/sso/${enc(s.id)}/edit`, class: 'button-link' }, `Edit ${s.name}`),
      dangerButton('Delete', `Delete SSO connection ${s.name}`, `Delete the SSO connection "${s.name}"? Nobody can sign in with it any more; its users stay.`, async () => {
        try {
          await api('DELETE', `/v1/mgmt/sso-connections/${enc(s.id)}`);
          flashNext(`The SSO connection "${s.name}" was deleted.`);
          go('#/sso');
        } catch (e) {
          if (e.status !== 401) msg.replaceChildren(banner(e.message));
        }
      }),
    ),
  );
}

// ----- Admin keys ------------------------------------------------------------------------------

const ADMIN_SCOPES = [
  ['read', 'every GET of the management API (no secret is ever readable)'],
  ['apps', 'outbound apps'],
  ['policies', 'access control policies and the simulator'],
  ['vault', 'connections: API keys, token import, revoke, force refresh'],
  ['directory', 'users, roles, tenants and SSO connections'],
  ['issuers', 'trusted inbound issuers'],
  ['clients', 'OAuth clients and MCP servers'],
  ['audit', 'the audit log and its export'],
  ['keys', 'data-key rotation'],
  ['admin', 'everything, and managing admin keys'],
];

async function adminKeysPage() {
  title('Admin keys');
  const mine = sessionKeyId();
  const msg = messages();
  const secretSlot = el('div');
  const list = el('div');
  let reload = async () => {};
  let shownKeyId = null;
  const revoke = async (k) => {
    try {
      await api('DELETE', `/v1/mgmt/admin-keys/${enc(k.id)}`);
      if (shownKeyId === k.id) secretSlot.replaceChildren();
      await reload();
      msg.replaceChildren(banner(`The admin key "${k.name}" (${k.id}) was revoked.`, 'ok'));
    } catch (e) {
      if (e.status !== 401) msg.replaceChildren(banner(e.message));
    }
  };
  const render = (items) =>
    dataTable(
      'Admin keys',
      ['Name', 'Id', 'Scopes', 'Expires', 'Created', 'Actions'],
      items.map((k) =>
        el(
          'tr',
          {},
          el('td', {}, k.name, k.id === mine ? el('span', { class: 'muted' }, ' (this session)') : null),
          el('td', {}, el('code', {}, k.id)),
          el('td', {}, k.scopes.join(', ')),
          el('td', {}, k.expiresAt ? when(k.expiresAt) : 'Never'),
          el('td', {}, when(k.createdAt)),
          el(
            'td',
            {},
            dangerButton(
              'Revoke',
              `Revoke admin key ${k.name}`,
              k.id === mine
                ? `Revoke "${k.name}"? This is the key this console is signed in with: revoking it ends this session at once, and every other use of the key stops working.`
                : `Revoke the admin key "${k.name}" (${k.id})? Everything using it stops working at once.`,
              () => revoke(k),
            ),
          ),
        ),
      ),
      'No admin key.',
    );

  const name = input('name');
  const scopes = checkGroup('Scopes', 'scopes', ADMIN_SCOPES.map(([s, d]) => [s, `${s}: ${d}`]), [], 'Give each key the least it needs.');
  const expires = input('expiresAt', { type: 'datetime-local' });
  const form = el(
    'form',
    { class: 'card', novalidate: true },
    formError(),
    field('Name', name, { path: 'name', hint: 'What the key is for (an automation, a person).' }),
    scopes.node,
    field('Expires', expires, { path: 'expiresAt', hint: 'Optional, in your local time: the key stops working then. Empty: never.' }),
    el('div', { class: 'actions' }, el('button', { type: 'submit' }, 'Create admin key')),
  );
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const body = { name: name.value.trim(), scopes: scopes.values() };
    if (expires.value) {
      const at = new Date(expires.value);
      if (Number.isNaN(at.getTime())) {
        return showErrors(form, new ApiFailure(400, { message: 'the expiry is not a date', details: [{ path: 'expiresAt', message: 'Give a date and a time.' }] }));
      }
      body.expiresAt = at.toISOString();
    }
    try {
      const created = await api('POST', '/v1/mgmt/admin-keys', body);
      form.reset();
      shownKeyId = created.id;
      secretSlot.replaceChildren(secretBox(`The admin key "${created.name}"`, 'Admin key (shown once)', created.key, 'revoke the key and create another'));
      msg.replaceChildren(banner(`The admin key "${created.name}" (${created.id}) was created.`, 'ok'));
      await reload();
      secretSlot.querySelector('input')?.focus();
    } catch (e) {
      refused(form, e);
    }
  });
  show(el('h1', {}, 'Admin keys'), msg, secretSlot, list, el('h2', {}, 'Create an admin key'), form);
  ({ reload } = await pagedList(list, '/v1/mgmt/admin-keys', render));
}

// ----- The section's pages ---------------------------------------------------------------------

/** `#/{section}`, `#/{section}/new`, `#/{section}/{id}`, `#/{section}/{id}/edit`. */
function crud(heading, back, { list, create, view, edit }) {
  return (parts) =>
    guarded(heading, back, () => {
      const [a, b] = parts;
      if (!a) return list();
      if (a === 'new' && !b) return create();
      if (b === 'edit') return edit(a);
      return view(a);
    });
}

export const pages = {
  servers: crud('MCP servers', ['#/servers', 'All MCP servers'], { list: serversList, create: newServerPage, view: serverPage, edit: editServerPage }),
  clients: crud('Clients', ['#/clients', 'All clients'], { list: clientsList, create: newClientPage, view: clientPage, edit: editClientPage }),
  sso: crud('SSO connections', ['#/sso', 'All SSO connections'], { list: ssoList, create: newSsoPage, view: ssoPage, edit: editSsoPage }),
  'admin-keys': () => guarded('Admin keys', null, adminKeysPage),
};
