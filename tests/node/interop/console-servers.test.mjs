// The console's servers section end to end in a real browser (headless Chromium driven by
// playwright-core, against a real `portcullis serve`): an admin signs in with the key, registers an
// MCP server through the form (a URI with a fragment is refused beside its field), registers a
// confidential client for it (a plain-http redirect URI is refused beside that URI), reads the
// secret shown once and gets a token with it at /oauth2/token, rotates the secret (the old one
// stops working), adds an SSO connection with two role-mapping rules (a rule naming a role that
// does not exist is refused beside its Roles field), creates a read-only admin key and revokes it.
// Every outcome is checked against the stored state through the API; axe-core checks each page
// (no serious or critical violation).

import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';

import { consoleWorld, navigate, signInWithKey } from '../lib/console.mjs';
import { FETCH_SCOPE, call } from '../lib/harness.mjs';

const SERVER_ID = 'calendar-mcp';
const SERVER_URI = 'https://mcp.example.test/calendar';
const CLIENT_ID = 'reporting';
const REDIRECT = 'https://reports.example.test/callback';

/** Asks for a client-credentials token for the MCP server with `clientId:secret` (HTTP Basic). */
function clientCredentials(url, clientId, secret, scope) {
  return call(`${url}/oauth2/token`, {
    method: 'POST',
    headers: { authorization: `Basic ${Buffer.from(`${clientId}:${secret}`).toString('base64')}` },
    form: { grant_type: 'client_credentials', resource: SERVER_URI, scope },
  });
}

/** `YYYY-MM-DDTHH:MM` in local time (a datetime-local input's value), `days` from now. */
function localDateTime(days) {
  const d = new Date(Date.now() + days * 86_400_000);
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

describe('the console\'s MCP servers, clients, SSO and admin keys', { timeout: 240_000 }, () => {
  const held = consoleWorld('console-servers');
  let world;
  let server;
  let page;
  let check;
  let sees;
  let dialogs;
  before(() => ({ world, server, page, check, sees, dialogs } = held));

  /** The error slot beside the control labelled `label` (within `scope`, default the page). */
  const errorBeside = (label, scope = page) => scope.locator('.field', { has: page.getByLabel(label, { exact: true }) }).locator('.field-error');

  test('an admin registers a server and its client, sets up SSO and manages admin keys', async () => {
    await signInWithKey(page, server.url, server.adminKey);

    // ----- Register an MCP server ---------------------------------------------------------------
    await navigate(page, 'MCP servers');
    await sees('No MCP server is registered yet.');
    await check('servers-empty');
    await page.getByRole('link', { name: 'Register an MCP server' }).click();
    await page.getByRole('heading', { name: 'Register an MCP server', level: 1 }).waitFor();
    await page.getByLabel('Name', { exact: true }).fill('Calendar MCP');
    await page.getByLabel('Id', { exact: true }).fill(SERVER_ID);
    // A resource URI with a fragment is refused, beside its field.
    await page.getByLabel('Resource URI').fill(`${SERVER_URI}#tools`);
    await page.getByLabel('Description', { exact: true }).fill('Calendar tools');
    const scope1 = page.getByRole('group', { name: 'Scope 1' });
    await scope1.getByLabel('Scope name').fill('calendar.read');
    await scope1.getByLabel('Scope description').fill('Read your calendars');
    await page.getByRole('button', { name: 'Add scope' }).click();
    const scope2 = page.getByRole('group', { name: 'Scope 2' });
    await scope2.getByLabel('Scope name').fill('calendar.write');
    await page.getByRole('button', { name: 'Register server' }).click();
    await errorBeside('Resource URI').filter({ hasText: 'must not have a fragment' }).waitFor();
    assert.equal(await page.getByLabel('Resource URI').getAttribute('aria-invalid'), 'true');
    assert.equal((await server.admin('GET', `/v1/mgmt/resources/${SERVER_ID}`)).status, 404, 'nothing was stored');
    await check('server-uri-refused');
    await page.getByLabel('Resource URI').fill(SERVER_URI);
    // A scope listed twice is refused beside its second listing.
    await scope2.getByLabel('Scope name').fill('calendar.read');
    await page.getByRole('button', { name: 'Register server' }).click();
    await errorBeside('Scope name', scope2).filter({ hasText: 'listed twice' }).waitFor();
    assert.equal(await errorBeside('Scope name', scope1).isHidden(), true, 'the first listing is fine');
    assert.equal((await server.admin('GET', `/v1/mgmt/resources/${SERVER_ID}`)).status, 404, 'nothing was stored');
    await scope2.getByLabel('Scope name').fill('calendar.write');
    await page.getByRole('button', { name: 'Register server' }).click();
    await page.getByRole('heading', { name: /^Calendar MCP/, level: 1 }).waitFor();
    await sees('The MCP server "Calendar MCP" is registered.');
    const stored = await server.must('GET', `/v1/mgmt/resources/${SERVER_ID}`);
    assert.equal(stored.uri, SERVER_URI);
    assert.equal(stored.name, 'Calendar MCP');
    assert.equal(stored.description, 'Calendar tools');
    assert.deepEqual(stored.scopes, [
      { name: 'calendar.read', description: 'Read your calendars' },
      { name: 'calendar.write' },
      { name: FETCH_SCOPE, description: stored.scopes[2]?.description },
    ]);
    // Its page shows the RFC 9728 metadata and leads to the clients.
    await sees(`"resource": "${SERVER_URI}"`);
    await sees('https://mcp.example.test/.well-known/oauth-protected-resource/calendar');
    await page.getByRole('link', { name: 'Open the metadata of Calendar MCP as JSON' }).waitFor();
    await check('server-page');

    // Edit: PUT replaces the whole server; the scopes come back as they were.
    await page.getByRole('link', { name: 'Edit Calendar MCP' }).click();
    await page.getByRole('heading', { name: 'Edit Calendar MCP', level: 1 }).waitFor();
    assert.equal(await page.getByRole('group', { name: 'Scope 1' }).getByLabel('Scope name').inputValue(), 'calendar.read');
    await page.getByLabel('Description', { exact: true }).fill('Calendar tools, read and write');
    await check('server-edit');
    await page.getByRole('button', { name: 'Save changes' }).click();
    await sees('The MCP server "Calendar MCP" is saved.');
    const edited = await server.must('GET', `/v1/mgmt/resources/${SERVER_ID}`);
    assert.equal(edited.description, 'Calendar tools, read and write');
    assert.deepEqual(edited.scopes, stored.scopes);

    await navigate(page, 'MCP servers');
    await page.getByRole('cell', { name: SERVER_URI }).waitFor();
    await check('servers-list');

    // ----- Register a confidential client ------------------------------------------------------
    await navigate(page, 'Clients');
    await sees('No client is registered yet.');
    await check('clients-empty');
    await page.getByRole('link', { name: 'Register a client' }).click();
    await page.getByRole('heading', { name: 'Register a client', level: 1 }).waitFor();
    await page.getByLabel('Name', { exact: true }).fill('Reporting service');
    await page.getByLabel('Client ID', { exact: true }).fill(CLIENT_ID);
    await page.getByLabel('Client type').selectOption('client_secret_basic');
    await page.getByLabel('Redirect URI 1', { exact: true }).fill(REDIRECT);
    await page.getByRole('button', { name: 'Add redirect URI' }).click();
    // Plain http on a host that is not a loopback address is refused, beside that URI.
    await page.getByLabel('Redirect URI 2', { exact: true }).fill('http://reports.example.test/callback');
    await page.getByRole('checkbox', { name: /^Authorization code/ }).check();
    await page.getByRole('checkbox', { name: /^Client credentials/ }).check();
    await page.getByRole('button', { name: 'Register client' }).click();
    const uriError = errorBeside('Redirect URI 2');
    await uriError.filter({ hasText: 'http is allowed only on a loopback address' }).waitFor();
    assert.equal(await errorBeside('Redirect URI 1').isHidden(), true, 'the first URI is fine');
    assert.equal((await server.admin('GET', `/v1/mgmt/clients/${CLIENT_ID}`)).status, 404, 'nothing was stored');
    await check('client-redirect-refused');
    await page.getByRole('button', { name: 'Remove redirect URI 2' }).click();
    await page.getByRole('button', { name: 'Register client' }).click();
    await page.getByRole('heading', { name: /^Reporting service/, level: 1 }).waitFor();
    await sees('it will not be shown again');
    const secret = await page.getByLabel('Client secret (shown once)').inputValue();
    assert.match(secret, /^pcs_/);
    await check('client-secret-shown');
    const client = await server.must('GET', `/v1/mgmt/clients/${CLIENT_ID}`);
    assert.equal(client.name, 'Reporting service');
    assert.equal(client.tokenEndpointAuthMethod, 'client_secret_basic');
    assert.deepEqual(client.grantTypes, ['authorization_code', 'client_credentials']);
    assert.deepEqual(client.redirectUris, [REDIRECT]);
    assert.equal(client.allowedApps, undefined, 'every outbound app');
    assert.ok(!JSON.stringify(client).includes(secret), 'the API never shows the secret again');

    // The secret works: a client-credentials token for the server, which introspects as active.
    const tok = await clientCredentials(server.url, CLIENT_ID, secret, 'calendar.read');
    assert.equal(tok.status, 200, tok.text);
    assert.equal(tok.body.scope, 'calendar.read');
    const intro = await call(`${server.url}/oauth2/introspect`, {
      method: 'POST',
      headers: { authorization: `Basic ${Buffer.from(`${CLIENT_ID}:${secret}`).toString('base64')}` },
      form: { token: tok.body.access_token },
    });
    assert.equal(intro.status, 200, intro.text);
    assert.equal(intro.body.active, true);
    assert.equal(intro.body.client_id, CLIENT_ID);
    assert.deepEqual([intro.body.aud].flat(), [SERVER_URI]);

    // Shown once: the page shown again has no secret.
    await page.reload();
    await page.getByRole('heading', { name: /^Reporting service/, level: 1 }).waitFor();
    await sees('Confidential');
    assert.equal(await page.getByLabel('Client secret (shown once)').count(), 0);
    assert.ok(!(await page.content()).includes(secret));

    // Rotate: a new secret, shown once; the old one stops working at once.
    await page.getByRole('button', { name: 'Rotate secret of client Reporting service' }).click();
    await sees('the old one no longer works');
    assert.match(dialogs.at(-1), /current secret stops working/);
    const rotated = await page.getByLabel('Client secret (shown once)').inputValue();
    assert.match(rotated, /^pcs_/);
    assert.notEqual(rotated, secret);
    await check('client-secret-rotated');
    const old = await clientCredentials(server.url, CLIENT_ID, secret, 'calendar.read');
    assert.equal(old.status, 401, old.text);
    assert.equal(old.body.error, 'invalid_client');
    const fresh = await clientCredentials(server.url, CLIENT_ID, rotated, 'calendar.write');
    assert.equal(fresh.status, 200, fresh.text);

    // Edit: the kind cannot change (public is not offered), the rest is replaced.
    await page.getByRole('link', { name: 'Edit Reporting service' }).click();
    await page.getByRole('heading', { name: 'Edit Reporting service', level: 1 }).waitFor();
    const kinds = await page.getByLabel('Client type').locator('option').evaluateAll((os) => os.map((o) => o.value));
    assert.deepEqual(kinds, ['client_secret_basic', 'client_secret_post']);
    assert.equal(await page.getByRole('checkbox', { name: /^Client credentials/ }).isChecked(), true);
    await page.getByLabel('Name', { exact: true }).fill('Reporting');
    await page.getByRole('checkbox', { name: /^Authorization code/ }).uncheck();
    await check('client-edit');
    await page.getByRole('button', { name: 'Save changes' }).click();
    await sees('The client "Reporting" is saved.');
    const changed = await server.must('GET', `/v1/mgmt/clients/${CLIENT_ID}`);
    assert.equal(changed.name, 'Reporting');
    assert.deepEqual(changed.grantTypes, ['client_credentials']);
    assert.deepEqual(changed.redirectUris, [REDIRECT]);
    assert.equal((await clientCredentials(server.url, CLIENT_ID, rotated, 'calendar.read')).status, 200, 'the secret stays');

    await navigate(page, 'Clients');
    await page.getByRole('link', { name: 'Reporting', exact: true }).waitFor();
    await check('clients-list');

    // ----- An SSO connection with two role-mapping rules ---------------------------------------
    await server.createRole('Engineer');
    await server.createRole('Auditor');
    await navigate(page, 'SSO', 'SSO connections');
    await sees('No SSO connection is set up yet.');
    await check('sso-empty');
    await page.getByRole('link', { name: 'Add an SSO connection' }).click();
    await page.getByRole('heading', { name: 'Add an SSO connection', level: 1 }).waitFor();
    await page.getByLabel('Name', { exact: true }).fill('Acme IdP');
    await page.getByLabel('Id', { exact: true }).fill('acme');
    await page.getByLabel('Issuer').fill(world.idp.issuer);
    await page.getByLabel('Client ID', { exact: true }).fill('portcullis-at-acme');
    await page.getByLabel('Client secret').fill('acme-client-secret');
    const rule1 = page.getByRole('group', { name: 'Rule 1' });
    await rule1.getByLabel('Claim').fill('groups');
    await rule1.getByLabel('Value').fill('eng');
    await rule1.getByLabel('Roles').fill('Engineer');
    await page.getByRole('button', { name: 'Add rule' }).click();
    const rule2 = page.getByRole('group', { name: 'Rule 2' });
    await rule2.getByLabel('Claim').fill('groups');
    await rule2.getByLabel('Value').fill('audit');
    // A role that does not exist is refused beside the second rule's roles.
    await rule2.getByLabel('Roles').fill('Auditor, Ghost');
    await page.getByRole('button', { name: 'Add connection' }).click();
    await errorBeside('Roles', rule2).filter({ hasText: 'Ghost' }).waitFor();
    assert.equal(await errorBeside('Roles', rule1).isHidden(), true);
    assert.equal((await server.admin('GET', '/v1/mgmt/sso-connections/acme')).status, 404, 'nothing was stored');
    await check('sso-rule-refused');
    await rule2.getByLabel('Roles').fill('Auditor');
    await page.getByRole('button', { name: 'Add connection' }).click();
    await page.getByRole('heading', { name: /^Acme IdP/, level: 1 }).waitFor();
    await sees('The SSO connection "Acme IdP" is added.');
    await page.getByRole('table', { name: 'Role-mapping rules' }).waitFor();
    const sso = await server.must('GET', '/v1/mgmt/sso-connections/acme');
    assert.equal(sso.issuer, world.idp.issuer);
    assert.equal(sso.clientId, 'portcullis-at-acme');
    assert.equal(sso.hasClientSecret, true);
    assert.deepEqual(sso.mappings, [
      { claim: 'groups', value: 'eng', roles: ['Engineer'] },
      { claim: 'groups', value: 'audit', roles: ['Auditor'] },
    ]);
    assert.ok(!(await page.content()).includes('acme-client-secret'));
    await check('sso-page');

    // Edit: the secret field is empty (write-only) and, left empty, keeps the stored secret.
    await page.getByRole('link', { name: 'Edit Acme IdP' }).click();
    await page.getByRole('heading', { name: 'Edit Acme IdP', level: 1 }).waitFor();
    assert.equal(await page.getByLabel('Client secret').inputValue(), '');
    await sees('A secret is stored.');
    await page.getByRole('group', { name: 'Rule 1' }).getByLabel('Value').fill('engineering');
    await page.getByRole('button', { name: 'Remove rule 2' }).click();
    assert.equal(await page.getByRole('group', { name: 'Rule 2' }).count(), 0);
    await check('sso-edit');
    await page.getByRole('button', { name: 'Save changes' }).click();
    await sees('The SSO connection "Acme IdP" is saved.');
    const ssoEdited = await server.must('GET', '/v1/mgmt/sso-connections/acme');
    assert.equal(ssoEdited.hasClientSecret, true, 'the secret is kept');
    assert.deepEqual(ssoEdited.mappings, [{ claim: 'groups', value: 'engineering', roles: ['Engineer'] }]);

    // ----- Admin keys: a read-only key, shown once, then revoked -------------------------------
    await navigate(page, 'Admin keys');
    await sees('(this session)');
    await check('admin-keys');
    await page.getByLabel('Name', { exact: true }).fill('Read-only robot');
    await page.getByRole('checkbox', { name: /^read:/ }).check();
    await page.getByLabel('Expires').fill(localDateTime(2));
    await page.getByRole('button', { name: 'Create admin key' }).click();
    await sees('The admin key "Read-only robot"');
    const key = await page.getByLabel('Admin key (shown once)').inputValue();
    assert.match(key, /^pca_/);
    await page.getByRole('cell', { name: 'Read-only robot', exact: true }).waitFor();
    await check('admin-key-shown');
    const keys = (await server.must('GET', '/v1/mgmt/admin-keys')).items;
    const robot = keys.find((k) => k.name === 'Read-only robot');
    assert.ok(robot, JSON.stringify(keys));
    assert.deepEqual(robot.scopes, ['read']);
    const expiresIn = Date.parse(robot.expiresAt) - Date.now();
    assert.ok(expiresIn > 1.9 * 86_400_000 && expiresIn < 2.1 * 86_400_000, robot.expiresAt);
    // The key reads, and may not change anything.
    assert.equal((await server.request('GET', '/v1/mgmt/outbound-apps', { token: key })).status, 200);
    const write = await server.request('POST', '/v1/mgmt/outbound-apps', { token: key, json: { id: 'x', name: 'X', type: 'apiKey' } });
    assert.equal(write.status, 403, write.text);
    assert.equal(write.body.error, 'insufficient_scope');

    // Revoking the key the console is signed in with warns, and the server refuses it.
    const me = keys.find((k) => k.name === 'bootstrap');
    await page.getByRole('button', { name: 'Revoke admin key bootstrap' }).click();
    await page.locator('.messages [role=alert]').filter({ hasText: 'cannot delete itself' }).waitFor();
    assert.match(dialogs.at(-1), /signed in with: revoking it ends this session/);
    assert.ok((await server.must('GET', '/v1/mgmt/admin-keys')).items.some((k) => k.id === me.id));

    await page.getByRole('button', { name: 'Revoke admin key Read-only robot' }).click();
    await sees(`The admin key "Read-only robot" (${robot.id}) was revoked.`);
    assert.doesNotMatch(dialogs.at(-1), /ends this session/);
    assert.equal(await page.getByRole('cell', { name: 'Read-only robot', exact: true }).count(), 0);
    assert.equal((await server.request('GET', '/v1/mgmt/outbound-apps', { token: key })).status, 401);
    await check('admin-key-revoked');

    // ----- Deletions ---------------------------------------------------------------------------
    await page.goto(`${server.url}/console#/clients/${CLIENT_ID}`);
    await page.getByRole('button', { name: 'Delete client Reporting' }).click();
    await sees('The client "Reporting" was deleted.');
    assert.equal((await server.admin('GET', `/v1/mgmt/clients/${CLIENT_ID}`)).status, 404);
    assert.equal((await clientCredentials(server.url, CLIENT_ID, rotated, 'calendar.read')).status, 401);

    await page.goto(`${server.url}/console#/sso/acme`);
    await page.getByRole('button', { name: 'Delete SSO connection Acme IdP' }).click();
    await sees('The SSO connection "Acme IdP" was deleted.');
    assert.equal((await server.admin('GET', '/v1/mgmt/sso-connections/acme')).status, 404);

    await page.goto(`${server.url}/console#/servers/${SERVER_ID}`);
    await page.getByRole('button', { name: 'Delete MCP server Calendar MCP' }).click();
    await sees('The MCP server "Calendar MCP" was deleted.');
    await sees('No MCP server is registered yet.');
    assert.equal((await server.admin('GET', `/v1/mgmt/resources/${SERVER_ID}`)).status, 404);
    await check('servers-after-delete');
  });
});
