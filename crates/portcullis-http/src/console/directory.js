// The console's directory: users (their roles, tenants and identity links), roles and tenants.
//
// Routes: #/users (the list, a page at a time, and a look-up by id), #/users/new, #/users/{id}
// (the user's record edited in place, password, connections, consents, delete); #/roles and
// #/roles/{name}; #/tenants and #/tenants/{id}. The API replaces a whole record on PUT: the forms
// send every field back (attributes too). Its refusals go beside the field they concern: a 400
// lists its fields in `details` (`[{path: 'identities[0].issuer', message}]`); a role or tenant
// that does not exist is a 409 with `details: {entity, id}`, mapped here to the control that names
// it. Text always goes in as text.

import {
  ApiFailure, api, banner, checkbox, clearErrors, dangerButton, dataTable, details, el, enc, field, flashNext,
  formError, go, guarded, input, listAll, messages, nextId, pagedList, refused, rowsEditor, select, setPath,
  show, showErrors, splitList, takeFlash, title, when,
} from './ui.js';

// ----- Shared pieces ---------------------------------------------------------------------------

/** A user's page. A user whose id is `new` gets a trailing slash (`#/users/new` creates one). */
const userHref = (id) => (id === 'new' ? '#/users/new/' : `#/users/${enc(id)}`);

/** Shows `node` in the message slot `msg`, scrolled into view (the action may be far below it). */
function tell(msg, node) {
  msg.replaceChildren(node);
  msg.scrollIntoView?.({ block: 'nearest' });
}

/** A random id: `prefix` and 16 hex digits (crypto.getRandomValues works on plain http too). */
function randomId(prefix) {
  const bytes = crypto.getRandomValues(new Uint8Array(8));
  return prefix + [...bytes].map((b) => b.toString(16).padStart(2, '0')).join('');
}

/** The slug a tenant's name suggests ("Acme Corp" → acme-corp), as the API's ids allow. */
function slugOf(name) {
  return name
    .normalize('NFKD')
    .replace(/[\u0300-\u036f]/g, '')
    .toLowerCase()
    .replace(/[^a-z0-9._-]+/g, '-')
    .replace(/^[^a-z0-9]+/, '')
    .slice(0, 64)
    .replace(/[-_.]+$/, '');
}

/** How many roles (or tenants) are offered as checkboxes (or a select) before a typed list. */
const MANY = 60;
/** How many roles and tenants the user forms read to offer. */
const CHOICES = 500;

/**
 * The roles a user holds (everywhere, or in a tenant): a checkbox per role, or a comma-separated
 * list when there are many. `values()` are the names chosen; `setPath(p)` the API path it answers for.
 */
function roleChooser(legend, path, all, checked = [], hint) {
  const known = [...all, ...checked.filter((r) => !all.includes(r))];
  if (known.length > MANY) {
    const text = input('roles', { value: checked.join(', '), spellcheck: 'false' });
    return {
      node: field(legend, text, { path, hint: hint ? `${hint} Comma-separated.` : 'Comma-separated role names.' }),
      values: () => splitList(text.value),
      setPath: (p) => setPath(text, p),
    };
  }
  const id = nextId('roles');
  const error = el('p', { class: 'field-error', id: `${id}-error`, hidden: true });
  const boxes = known.map((r) => checkbox('role', r, r, checked.includes(r)));
  const node = el(
    'fieldset',
    { id, 'data-path': path, tabindex: '-1', 'aria-describedby': error.id },
    el('legend', {}, legend),
    hint ? el('p', { class: 'hint' }, hint) : null,
    boxes.length
      ? el('div', { class: 'scope-list' }, boxes)
      : el('p', { class: 'hint' }, 'No role exists yet: ', el('a', { href: '#/roles' }, 'add roles on the Roles page'), '.'),
    error,
  );
  return {
    node,
    values: () => boxes.map((b) => b.querySelector('input')).filter((b) => b.checked).map((b) => b.value),
    setPath: (p) => setPath(node, p),
  };
}

/** The roles and tenants a user form offers. */
async function directoryChoices() {
  const [roles, tenants] = await Promise.all([listAll('/v1/mgmt/roles', CHOICES), listAll('/v1/mgmt/tenants', CHOICES)]);
  return { roles: roles.map((r) => r.name), tenants };
}

// ----- Users -----------------------------------------------------------------------------------

/** A user's tenants in words: `acme (Editor, Viewer); globex`. */
const tenantsText = (u) => u.tenants.map((m) => (m.roles.length ? `${m.tenantId} (${m.roles.join(', ')})` : m.tenantId)).join('; ');

async function usersPage() {
  title('Users');
  const list = el('div');
  show(
    el('h1', {}, 'Users'),
    takeFlash(),
    el('p', {}, 'The directory\'s users: the roles they hold (everywhere and in each tenant), which policies\' userRoles conditions read on their next token request, and the identities of other issuers that are them.'),
    el('p', {}, el('a', { href: '#/users/new' }, 'Create a user')),
    findUserForm(),
    el('h2', {}, 'All users'),
    list,
  );
  await pagedList(list, '/v1/mgmt/users', (items) =>
    dataTable(
      'Users, by id',
      ['Id', 'Name', 'Email', 'Roles', 'Tenants', 'Status'],
      items.map((u) =>
        el(
          'tr',
          {},
          el('td', {}, el('a', { href: userHref(u.id) }, u.id)),
          el('td', {}, u.name || '—'),
          el('td', {}, u.email || '—'),
          el('td', {}, u.roles.join(', ') || '—'),
          el('td', {}, tenantsText(u) || '—'),
          el('td', {}, u.disabled ? 'Disabled' : 'Active'),
        ),
      ),
      'No user is in the directory yet.',
    ),
  );
}

/** Opens a user's page by id (the list has no search: users are listed by id). */
function findUserForm() {
  const id = input('findUserId', { spellcheck: 'false' });
  const form = el(
    'form',
    { class: 'card inline-form', novalidate: true, 'aria-label': 'Find a user' },
    formError(),
    field('User id', id, { path: 'id', hint: 'Open a user\'s page by id.' }),
    el('div', { class: 'actions' }, el('button', { type: 'submit', class: 'secondary' }, 'Open user')),
  );
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const v = id.value.trim();
    try {
      if (!v) throw new ApiFailure(400, { error: 'invalid_request', message: 'Type a user id.', details: [{ path: 'id', message: 'Type a user id.' }] });
      const u = await api('GET', `/v1/mgmt/users/${enc(v)}`);
      go(userHref(u.id));
    } catch (e) {
      refused(form, e, () => 'id');
    }
  });
  return form;
}

function identityRow(i, draft, onRemove) {
  const issuer = input('issuer', { value: draft?.issuer || '', spellcheck: 'false' });
  const subject = input('subject', { value: draft?.subject || '', spellcheck: 'false' });
  const row = el(
    'div',
    { class: 'condition', role: 'group', 'aria-label': `Identity link ${i + 1}` },
    field('Issuer', issuer, { path: `identities[${i}].issuer`, hint: 'The issuer\'s exact iss.' }),
    field('Subject', subject, { path: `identities[${i}].subject`, hint: 'The user\'s exact sub there.' }),
    el('div', { class: 'row-actions' }, el('button', { type: 'button', class: 'secondary', 'aria-label': `Remove identity link ${i + 1}`, onclick: onRemove }, 'Remove')),
  );
  row.draft = () => ({ issuer: issuer.value.trim(), subject: subject.value.trim() });
  row.read = () => {
    const d = row.draft();
    return d.issuer || d.subject ? d : null;
  };
  row.index = (k) => {
    setPath(issuer, k === null ? null : `identities[${k}].issuer`);
    setPath(subject, k === null ? null : `identities[${k}].subject`);
  };
  return row;
}

/** The rows of tenant memberships, offering `choices` (the tenants and roles that exist). */
function membershipRow(choices) {
  return (i, draft, onRemove) => {
    const tenantId = draft?.tenantId || '';
    let tenant;
    let list = null;
    if (choices.tenants.length <= MANY * 4) {
      const options = choices.tenants.map((t) => [t.id, t.name === t.id ? t.id : `${t.name} (${t.id})`]);
      if (tenantId && !options.some(([v]) => v === tenantId)) options.push([tenantId, tenantId]);
      tenant = select('tenantId', [['', 'Choose a tenant'], ...options], tenantId);
    } else {
      list = el('datalist', { id: nextId('tenants') }, choices.tenants.map((t) => el('option', { value: t.id }, t.name)));
      tenant = input('tenantId', { value: tenantId, list: list.id, spellcheck: 'false' });
    }
    const roles = roleChooser(`Roles in tenant membership ${i + 1}`, `tenants[${i}].roles`, choices.roles, draft?.roles || []);
    const row = el(
      'div',
      { class: 'condition', role: 'group', 'aria-label': `Tenant membership ${i + 1}` },
      field('Tenant', tenant, { path: `tenants[${i}].tenantId` }),
      list,
      roles.node,
      el('div', { class: 'row-actions' }, el('button', { type: 'button', class: 'secondary', 'aria-label': `Remove tenant membership ${i + 1}`, onclick: onRemove }, 'Remove')),
    );
    row.draft = () => ({ tenantId: tenant.value.trim(), roles: roles.values() });
    row.read = () => {
      const d = row.draft();
      return d.tenantId || d.roles.length ? d : null;
    };
    row.index = (k) => {
      setPath(tenant, k === null ? null : `tenants[${k}].tenantId`);
      roles.setPath(k === null ? null : `tenants[${k}].roles`);
    };
    return row;
  };
}

/** Where a refusal of a user's record goes, from what was sent (`body`). */
function userRefusalPath(body) {
  return (e) => {
    const d = e.details && !Array.isArray(e.details) ? e.details : null;
    if (e.code === 'unknown_reference' && d) {
      if (d.entity === 'tenant') {
        const k = body.tenants.findIndex((m) => m.tenantId === d.id);
        return k >= 0 ? `tenants[${k}].tenantId` : 'tenants';
      }
      if (d.entity === 'role') {
        if (body.roles.includes(d.id)) return 'roles';
        const k = body.tenants.findIndex((m) => m.roles.includes(d.id));
        return k >= 0 ? `tenants[${k}].roles` : 'roles';
      }
    }
    if (e.code === 'already_exists') {
      // `details.entity` says what is taken: the id, the email or an identity link.
      if (d?.entity === 'user email') return 'email';
      if (d?.entity === 'user identity') return 'identities';
      return 'id';
    }
    return null;
  };
}

/** The form creating (no `current`) or replacing a user; `choices` are the roles and tenants. */
function userForm(current, choices) {
  const id = input('id', { spellcheck: 'false' });
  const name = input('name', { value: current?.name || '', autocomplete: 'off' });
  const email = input('email', { value: current?.email || '', inputmode: 'email', spellcheck: 'false' });
  const roles = roleChooser('Roles', 'roles', choices.roles, current?.roles || [], 'Held everywhere: policies\' userRoles conditions read them.');
  const identities = rowsEditor({
    legend: 'Identity links',
    hint: 'Tokens of another issuer whose iss and sub match a link are this user (each identity belongs to one user; at most 16).',
    path: 'identities',
    addText: 'Add identity link',
    makeRow: identityRow,
    drafts: current?.identities || [],
  });
  const hasTenants = choices.tenants.length > 0 || Boolean(current?.tenants?.length);
  const tenants = hasTenants
    ? rowsEditor({
        legend: 'Tenant memberships',
        hint: 'The tenants the user belongs to, with the roles the user holds in each.',
        path: 'tenants',
        addText: 'Add tenant membership',
        makeRow: membershipRow(choices),
        drafts: current?.tenants || [],
      })
    : {
        node: el('fieldset', {}, el('legend', {}, 'Tenant memberships'), el('p', { class: 'hint' }, 'No tenant exists yet: ', el('a', { href: '#/tenants' }, 'add tenants on the Tenants page'), '.')),
        read: () => [],
      };
  const attrs = current && Object.keys(current.attributes || {}).length ? JSON.stringify(current.attributes, null, 2) : '';
  const attributes = el('textarea', { name: 'attributes', rows: '4', spellcheck: 'false' }, attrs);
  const disabled = checkbox('disabled', 'true', 'Disabled: the user gets no outbound token', Boolean(current?.disabled));
  const form = el(
    'form',
    { class: 'card', novalidate: true },
    formError(),
    current
      ? null
      : field('Id', id, { path: 'id', hint: 'Tokens whose sub is this id are this user (or link their identities below). Optional: one is generated when empty. It cannot change.' }),
    field('Name', name, { path: 'name' }),
    field('Email', email, { path: 'email', hint: 'Unique among users.' }),
    roles.node,
    identities.node,
    tenants.node,
    field('Attributes (JSON)', attributes, { path: 'attributes', hint: 'Free-form: a JSON object of at most 16 KiB, for example {"department": "sales"}.' }),
    el('div', { class: 'field' }, disabled),
    el(
      'div',
      { class: 'actions' },
      el('button', { type: 'submit' }, current ? 'Save changes' : 'Create user'),
      el('a', { href: current ? userHref(current.id) : '#/users' }, 'Cancel'),
    ),
  );
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const body = {
      roles: roles.values(),
      identities: identities.read(),
      tenants: tenants.read(),
      disabled: disabled.querySelector('input').checked,
      attributes: {},
    };
    if (!current) body.id = id.value.trim() || randomId('u-');
    if (name.value.trim()) body.name = name.value.trim();
    if (email.value.trim()) body.email = email.value.trim();
    if (attributes.value.trim()) {
      let parsed;
      try {
        parsed = JSON.parse(attributes.value);
      } catch (e) {
        parsed = e;
      }
      if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed) || parsed instanceof Error) {
        const message = parsed instanceof Error ? `The attributes are not valid JSON: ${parsed.message}` : 'The attributes must be a JSON object ({…}).';
        return showErrors(form, new ApiFailure(400, { error: 'invalid_request', message, details: [{ path: 'attributes', message }] }));
      }
      body.attributes = parsed;
    }
    try {
      const saved = current
        ? await api('PUT', `/v1/mgmt/users/${enc(current.id)}`, body)
        : await api('POST', '/v1/mgmt/users', body);
      flashNext(current ? `The user "${saved.name || saved.id}" is saved.` : `The user "${saved.name || saved.id}" is created.`);
      go(userHref(saved.id));
    } catch (e) {
      refused(form, e, userRefusalPath(body));
    }
    return undefined;
  });
  return { form, focus: () => (current ? name : id).focus() };
}

async function newUserPage() {
  const choices = await directoryChoices();
  title('Create a user');
  const { form, focus } = userForm(null, choices);
  show(el('p', {}, el('a', { href: '#/users' }, '← All users')), el('h1', {}, 'Create a user'), form);
  focus();
}

async function userPage(id) {
  const [u, choices] = await Promise.all([api('GET', `/v1/mgmt/users/${enc(id)}`), directoryChoices()]);
  const label = u.name || u.id;
  title(label);
  const msg = messages();
  const { form } = userForm(u, choices);
  const connections = el('div');
  const consents = el('div');
  show(
    el('p', {}, el('a', { href: '#/users' }, '← All users')),
    el('h1', {}, label, u.name ? [' ', el('span', { class: 'muted' }, `(${u.id})`)] : null),
    takeFlash(),
    msg,
    details([
      ['Id', el('code', {}, u.id)],
      ['Status', u.disabled ? 'Disabled: gets no outbound token' : 'Active'],
      ['Added', when(u.createdAt)],
      ['Last changed', when(u.updatedAt)],
    ]),
    el('h2', {}, 'Edit the user'),
    form,
    el('h2', {}, 'Password'),
    passwordForm(u),
    el('h2', {}, 'Connections'),
    connections,
    el('h2', {}, 'Consents'),
    consents,
    el('h2', {}, 'Delete'),
    el(
      'p',
      {},
      dangerButton(
        `Delete user ${label}`,
        `Delete user ${label}`,
        `Delete the user "${label}"? The user's connections are deleted too, without being revoked at the providers (revoke them first to end them there).`,
        async () => {
          try {
            await api('DELETE', `/v1/mgmt/users/${enc(u.id)}`);
            flashNext(`The user "${label}" is deleted.`);
            go('#/users');
          } catch (e) {
            if (e.status !== 401) tell(msg, banner(e.message));
          }
        },
      ),
    ),
  );
  await Promise.all([connectionsSection(u, label, connections), consentsSection(u, label, consents)]);
}

/** Sets the password the user signs in with at Portcullis's authorization server. */
function passwordForm(u) {
  const password = el('input', { type: 'password', name: 'password', autocomplete: 'new-password' });
  const status = el('div', { 'aria-live': 'polite' });
  const form = el(
    'form',
    { class: 'card', novalidate: true, 'aria-label': 'Set the password' },
    formError(),
    field('New password', password, { path: 'password', hint: '8 to 256 characters, for signing in at Portcullis. It replaces the current one and clears any lockout; only its hash is stored.' }),
    el('div', { class: 'actions' }, el('button', { type: 'submit' }, 'Set password')),
    status,
  );
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    status.replaceChildren();
    try {
      await api('PUT', `/v1/mgmt/users/${enc(u.id)}/password`, { password: password.value });
      password.value = '';
      clearErrors(form);
      status.replaceChildren(banner('The password is set.', 'ok'));
    } catch (e) {
      refused(form, e, (f) => (f.code === 'invalid_password' ? 'password' : null));
    }
  });
  return form;
}

/** A section that the session may not read (a key without the vault scope) says so. */
function unreadable(box, what, e) {
  if (e instanceof ApiFailure && e.status === 401) throw e;
  box.replaceChildren(banner(`The ${what} cannot be shown: ${e.message}.`, 'info'));
}

/** The user's connections to outbound apps, a page at a time, and Revoke all. */
async function connectionsSection(u, label, box) {
  const status = el('div', { 'aria-live': 'polite' });
  const list = el('div');
  let paged = null;
  const revokeAll = dangerButton(
    'Revoke all connections',
    `Revoke all connections of ${label}`,
    `Revoke every connection of "${label}"? Each credential is deleted, and revoked at its provider when the app has a revocation endpoint.`,
    async () => {
      try {
        const out = await api('DELETE', `/v1/mgmt/users/${enc(u.id)}/connections`);
        const items = out?.items || [];
        const unconfirmed = items.filter((r) => !r.providerRevoked && r.providerError).length;
        await paged.reload();
        status.replaceChildren(
          banner(
            items.length
              ? `Revoked ${items.length} connection${items.length === 1 ? '' : 's'}.${unconfirmed ? ` ${unconfirmed} provider${unconfirmed === 1 ? '' : 's'} did not confirm (deleted here all the same).` : ''}`
              : 'There was no connection to revoke.',
            'ok',
          ),
        );
      } catch (e) {
        if (e.status !== 401) status.replaceChildren(banner(e.message));
      }
    },
  );
  box.replaceChildren(
    el('p', { class: 'hint' }, 'The credentials Portcullis stores for this user, app by app (never shown).'),
    list,
    el('div', { class: 'actions' }, revokeAll),
    status,
  );
  try {
    paged = await pagedList(list, `/v1/mgmt/users/${enc(u.id)}/connections`, (items) => {
      revokeAll.hidden = !items.length;
      return dataTable(
        `Connections of ${label}`,
        ['App', 'Tenant', 'Type', 'Status', 'Scopes', 'Expires', 'Last used'],
        items.map((c) =>
          el(
            'tr',
            {},
            el('td', {}, el('a', { href: `#/apps/${enc(c.appId)}/tokens` }, c.appId)),
            el('td', {}, c.tenantId || '—'),
            el('td', {}, c.type === 'apiKey' ? 'API key' : 'OAuth'),
            el('td', {}, c.status === 'consentRequired' ? 'Consent required' : 'Active'),
            el('td', {}, c.scopes.join(', ') || '—'),
            el('td', {}, when(c.expiresAt)),
            el('td', {}, when(c.lastUsedAt)),
          ),
        ),
        'This user has no connection.',
      );
    });
  } catch (e) {
    unreadable(box, 'connections', e);
  }
}

/** The consents the user remembered at Portcullis's authorization server, and their revocation. */
async function consentsSection(u, label, box, message = null) {
  let out;
  try {
    out = await api('GET', `/v1/mgmt/users/${enc(u.id)}/consents`);
  } catch (e) {
    return unreadable(box, 'consents', e);
  }
  const status = el('div', { 'aria-live': 'polite' }, message ? banner(message, 'ok') : null);
  const revoke = async (clientId) => {
    try {
      await api('DELETE', `/v1/mgmt/users/${enc(u.id)}/consents${clientId ? `?clientId=${enc(clientId)}` : ''}`);
      await consentsSection(u, label, box, clientId ? `The consents given to ${clientId} are revoked.` : 'Every consent is revoked.');
    } catch (e) {
      if (e.status !== 401) status.replaceChildren(banner(e.message));
    }
  };
  const items = out.items || [];
  const parts = [
    el('p', { class: 'hint' }, 'What the user allowed clients at the consent screen. Revoking one also revokes the refresh tokens of those grants: the client must ask again.'),
    dataTable(
      `Consents of ${label}`,
      ['Client', 'Resource', 'Scopes', 'Given', 'Last widened', 'Actions'],
      items.map((c) =>
        el(
          'tr',
          {},
          el('td', {}, el('code', {}, c.clientId)),
          el('td', {}, el('code', {}, c.resource)),
          el('td', {}, c.scopes.join(', ') || '—'),
          el('td', {}, when(c.createdAt)),
          el('td', {}, when(c.updatedAt)),
          el(
            'td',
            { class: 'row-actions' },
            dangerButton('Revoke', `Revoke the consents given to ${c.clientId} for ${c.resource}`, `Revoke the consents "${label}" gave ${c.clientId}? The client must ask again.`, () => revoke(c.clientId)),
          ),
        ),
      ),
      'This user has no remembered consent.',
    ),
    items.length
      ? el('div', { class: 'actions' }, dangerButton('Revoke all consents', `Revoke all consents of ${label}`, `Revoke every consent "${label}" gave? Every client must ask again.`, () => revoke(null)))
      : null,
    status,
  ];
  box.replaceChildren(...parts.filter(Boolean));
  return undefined;
}

// ----- Roles -----------------------------------------------------------------------------------

/** Where a refusal of a role without paths goes: a name taken. */
const rolePath = (e) => (e.code === 'already_exists' ? 'name' : null);

async function rolesPage() {
  title('Roles');
  const list = el('div');
  const msg = messages();
  const name = input('name', { spellcheck: 'false' });
  const description = input('description');
  const form = el(
    'form',
    { class: 'card', novalidate: true, 'aria-labelledby': 'create-role' },
    formError(),
    field('Name', name, { path: 'name', hint: 'Its id, as users hold it and policies name it (1 to 128 characters). It cannot change.' }),
    field('Description', description, { path: 'description' }),
    el('div', { class: 'actions' }, el('button', { type: 'submit' }, 'Create role')),
  );
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const body = { name: name.value.trim() };
    if (description.value.trim()) body.description = description.value.trim();
    try {
      const saved = await api('POST', '/v1/mgmt/roles', body);
      flashNext(`The role "${saved.name}" is created.`);
      go('#/roles');
    } catch (e) {
      refused(form, e, rolePath);
    }
  });
  show(
    el('h1', {}, 'Roles'),
    takeFlash(),
    el('p', {}, 'The roles users hold, everywhere or within a tenant; policies\' userRoles conditions name them.'),
    msg,
    el('h2', { id: 'create-role' }, 'Create a role'),
    form,
    el('h2', {}, 'All roles'),
    list,
  );
  const paged = await pagedList(list, '/v1/mgmt/roles', (items) =>
    dataTable(
      'Roles, by name',
      ['Name', 'Description', 'Actions'],
      items.map((r) =>
        el(
          'tr',
          {},
          el('td', {}, el('a', { href: `#/roles/${enc(r.name)}` }, r.name)),
          el('td', {}, r.description || '—'),
          el(
            'td',
            { class: 'row-actions' },
            dangerButton('Delete', `Delete role ${r.name}`, `Delete the role "${r.name}"?`, async () => {
              try {
                await api('DELETE', `/v1/mgmt/roles/${enc(r.name)}`);
                await paged.reload();
                tell(msg, banner(`The role "${r.name}" is deleted.`, 'ok'));
              } catch (e) {
                if (e.status !== 401) tell(msg, banner(`The role "${r.name}" cannot be deleted: ${e.message}.`));
              }
            }),
          ),
        ),
      ),
      'No role exists yet.',
    ),
  );
}

async function rolePage(roleName) {
  const r = await api('GET', `/v1/mgmt/roles/${enc(roleName)}`);
  title(`Role ${r.name}`);
  const msg = messages();
  const description = el('textarea', { name: 'description', rows: '3' }, r.description || '');
  const status = el('div', { 'aria-live': 'polite' });
  const form = el(
    'form',
    { class: 'card', novalidate: true },
    formError(),
    field('Description', description, { path: 'description', hint: 'At most 1,024 characters.' }),
    el('div', { class: 'actions' }, el('button', { type: 'submit' }, 'Save description')),
    status,
  );
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    status.replaceChildren();
    const body = {};
    if (description.value.trim()) body.description = description.value.trim();
    try {
      const saved = await api('PUT', `/v1/mgmt/roles/${enc(r.name)}`, body);
      clearErrors(form);
      status.replaceChildren(banner(`The description of ${saved.name} is saved.`, 'ok'));
    } catch (e) {
      refused(form, e);
    }
  });
  show(
    el('p', {}, el('a', { href: '#/roles' }, '← All roles')),
    el('h1', {}, `Role ${r.name}`),
    takeFlash(),
    msg,
    details([
      ['Name', el('code', {}, r.name)],
      ['Added', when(r.createdAt)],
      ['Last changed', when(r.updatedAt)],
    ]),
    el('h2', {}, 'Description'),
    form,
    el('h2', {}, 'Delete'),
    el('p', { class: 'hint' }, 'Only a role no user holds can be deleted.'),
    el(
      'p',
      {},
      dangerButton(`Delete role ${r.name}`, `Delete role ${r.name}`, `Delete the role "${r.name}"?`, async () => {
        try {
          await api('DELETE', `/v1/mgmt/roles/${enc(r.name)}`);
          flashNext(`The role "${r.name}" is deleted.`);
          go('#/roles');
        } catch (e) {
          if (e.status !== 401) tell(msg, banner(`The role "${r.name}" cannot be deleted: ${e.message}.`));
        }
      }),
    ),
  );
}

// ----- Tenants ---------------------------------------------------------------------------------

/** Where a refusal of a tenant without paths goes: an id taken. */
const tenantPath = (e) => (e.code === 'already_exists' ? 'id' : null);

async function tenantsPage() {
  title('Tenants');
  const list = el('div');
  const msg = messages();
  const name = input('name');
  const id = input('id', { spellcheck: 'false' });
  const idField = field('Id', id, { path: 'id', hint: 'Optional: derived from the name when empty. Letters, digits, -, _ and . (at most 64); it cannot change.' });
  const idHint = idField.querySelector('.hint');
  name.addEventListener('input', () => {
    const slug = slugOf(name.value.trim());
    idHint.textContent = slug
      ? `Optional: ${slug} when empty. Letters, digits, -, _ and . (at most 64); it cannot change.`
      : 'Optional: derived from the name when empty. Letters, digits, -, _ and . (at most 64); it cannot change.';
  });
  const form = el(
    'form',
    { class: 'card', novalidate: true, 'aria-labelledby': 'create-tenant' },
    formError(),
    field('Name', name, { path: 'name' }),
    idField,
    el('div', { class: 'actions' }, el('button', { type: 'submit' }, 'Create tenant')),
  );
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const n = name.value.trim();
    const body = { id: id.value.trim() || slugOf(n) || randomId('t-'), name: n };
    try {
      const saved = await api('POST', '/v1/mgmt/tenants', body);
      flashNext(`The tenant "${saved.name}" (${saved.id}) is created.`);
      go('#/tenants');
    } catch (e) {
      refused(form, e, tenantPath);
    }
  });
  show(
    el('h1', {}, 'Tenants'),
    takeFlash(),
    el('p', {}, 'The organizations users belong to (with roles in each, set on the user\'s page). A tenant can also own a shared connection to an app.'),
    msg,
    el('h2', { id: 'create-tenant' }, 'Create a tenant'),
    form,
    el('h2', {}, 'All tenants'),
    list,
  );
  const paged = await pagedList(list, '/v1/mgmt/tenants', (items) =>
    dataTable(
      'Tenants, by id',
      ['Name', 'Id', 'Actions'],
      items.map((t) =>
        el(
          'tr',
          {},
          el('td', {}, el('a', { href: `#/tenants/${enc(t.id)}` }, t.name)),
          el('td', {}, el('code', {}, t.id)),
          el(
            'td',
            { class: 'row-actions' },
            dangerButton('Delete', `Delete tenant ${t.name} (${t.id})`, `Delete the tenant "${t.name}", its memberships and its connections?`, async () => {
              try {
                await api('DELETE', `/v1/mgmt/tenants/${enc(t.id)}`);
                await paged.reload();
                tell(msg, banner(`The tenant "${t.name}" is deleted.`, 'ok'));
              } catch (e) {
                if (e.status !== 401) tell(msg, banner(`The tenant "${t.name}" cannot be deleted: ${e.message}.`));
              }
            }),
          ),
        ),
      ),
      'No tenant exists yet.',
    ),
  );
}

async function tenantPage(tenantId) {
  const t = await api('GET', `/v1/mgmt/tenants/${enc(tenantId)}`);
  title(t.name);
  const msg = messages();
  const name = input('name', { value: t.name });
  const status = el('div', { 'aria-live': 'polite' });
  const form = el(
    'form',
    { class: 'card', novalidate: true },
    formError(),
    field('Name', name, { path: 'name', hint: '1 to 128 characters.' }),
    el('div', { class: 'actions' }, el('button', { type: 'submit' }, 'Save name')),
    status,
  );
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    status.replaceChildren();
    try {
      // PUT replaces the tenant: its attributes go back as they are.
      const saved = await api('PUT', `/v1/mgmt/tenants/${enc(t.id)}`, { name: name.value.trim(), attributes: t.attributes || {} });
      flashNext(`The tenant is renamed "${saved.name}".`);
      go(`#/tenants/${enc(t.id)}`);
    } catch (e) {
      refused(form, e);
    }
  });
  show(
    el('p', {}, el('a', { href: '#/tenants' }, '← All tenants')),
    el('h1', {}, t.name, ' ', el('span', { class: 'muted' }, `(${t.id})`)),
    takeFlash(),
    msg,
    details([
      ['Id', el('code', {}, t.id)],
      ['Attributes', Object.keys(t.attributes || {}).length ? el('pre', { class: 'json' }, JSON.stringify(t.attributes, null, 2)) : null],
      ['Added', when(t.createdAt)],
      ['Last changed', when(t.updatedAt)],
    ]),
    el('p', { class: 'hint' }, 'Members are set on each user\'s page (Tenant memberships).'),
    el('h2', {}, 'Name'),
    form,
    el('h2', {}, 'Delete'),
    el(
      'p',
      {},
      dangerButton(`Delete tenant ${t.name}`, `Delete tenant ${t.name} (${t.id})`, `Delete the tenant "${t.name}", its memberships and its connections?`, async () => {
        try {
          await api('DELETE', `/v1/mgmt/tenants/${enc(t.id)}`);
          flashNext(`The tenant "${t.name}" is deleted.`);
          go('#/tenants');
        } catch (e) {
          if (e.status !== 401) tell(msg, banner(e.message));
        }
      }),
    ),
  );
}

// ----- Routes ----------------------------------------------------------------------------------

export const pages = {
  users: (parts) => {
    if (parts[0] === 'new' && parts.length === 1) return newUserPage();
    if (parts[0]) return guarded('User', ['#/users', '← All users'], () => userPage(parts[0]));
    return usersPage();
  },
  roles: (parts) => (parts[0] ? guarded('Role', ['#/roles', '← All roles'], () => rolePage(parts[0])) : rolesPage()),
  tenants: (parts) => (parts[0] ? guarded('Tenant', ['#/tenants', '← All tenants'], () => tenantPage(parts[0])) : tenantsPage()),
};
