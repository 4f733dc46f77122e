// The admin console at /console, end to end in a real browser: headless Chromium (the system's
// /usr/bin/chromium, driven by playwright-core; no browser is downloaded) against a real
// `portcullis serve`. An admin signs in with the key, registers an app, writes the Viewers policy
// through the form after seeing its replay preview, runs the Test panel, revokes a connection and
// finds the change in the audit log. axe-core checks every page visited (no serious or critical
// violation); screenshots go to CONSOLE_SCREENSHOTS (default: a temporary directory).

import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';

import { consoleWorld } from '../lib/console.mjs';

const APP = 'calendar';
const READ = 'calendar.readonly';
const WRITE = 'calendar.events';

describe('the admin console in a browser', { timeout: 180_000 }, () => {
  const held = consoleWorld('console');
  let world;
  let server;
  let page;
  let check;
  let sees;
  before(() => ({ world, server, page, check, sees } = held));

  test('an admin manages an app, its policy and its connections from the console', async () => {
    const { idp, provider } = world;

    // ----- Sign in ----------------------------------------------------------------------------
    const csp = [];
    page.on('console', (m) => {
      if (/Content Security Policy/i.test(m.text())) csp.push(m.text());
    });
    const resp = await page.goto(`${server.url}/console`);
    assert.match(resp.headers()['content-security-policy'], /default-src 'self'/);
    await page.getByLabel('Admin key').waitFor();
    await check('sign-in');
    await page.getByLabel('Admin key').fill('pca_wrong');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.locator('.field-error').filter({ hasText: 'not valid' }).waitFor();
    await page.getByLabel('Admin key').fill(server.adminKey);
    await page.getByRole('button', { name: 'Sign in' }).click();
    // The dashboard is the landing page: nothing decided yet.
    await page.getByRole('heading', { name: 'Dashboard', exact: true }).waitFor();
    await sees('No decision in this window.');
    // The key is nowhere in the page, and the cookie is not readable by script.
    assert.equal(await page.evaluate(() => document.cookie), '');
    assert.ok(!(await page.content()).includes(server.adminKey));
    await check('dashboard-empty');
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Outbound apps' }).click();
    await page.getByRole('heading', { name: 'Outbound apps' }).waitFor();
    await check('apps-empty');

    // ----- Register an app --------------------------------------------------------------------
    await page.getByRole('link', { name: 'Register an outbound app' }).click();
    await page.getByLabel('Name', { exact: true }).fill('Calendar');
    await page.getByLabel('Id', { exact: true }).fill(APP);
    await page.getByLabel('Client ID').fill('calendar-client');
    await page.getByLabel('Client secret').fill('calendar-secret');
    await page.getByLabel('Authorization URL').fill(`${provider.url}/authorize`);
    // An invalid URL is refused beside its field.
    await page.getByLabel('Token URL').fill('not a url');
    await page.getByLabel('Scopes').fill(`${READ}, ${WRITE}`);
    await page.getByRole('button', { name: 'Register app' }).click();
    await page.locator('.form-error [role=alert]').waitFor();
    await check('create-app-error');
    await page.getByLabel('Token URL').fill(`${provider.url}/token`);
    await page.getByRole('button', { name: 'Register app' }).click();
    await page.getByRole('heading', { name: /Calendar/ }).waitFor();
    await sees('This app has no policy');

    // ----- Decisions to replay, while the app is still open ------------------------------------
    for (const role of ['Viewer', 'Editor']) await server.createRole(role);
    await server.createUser({ id: 'vera', roles: ['Viewer'], identities: idp.identity('vera') });
    await server.createUser({ id: 'bob', roles: [], identities: idp.identity('bob') });
    for (const sub of ['vera', 'bob']) {
      const r = await server.request('POST', `/v1/outbound/apps/${APP}/check`, { token: await idp.token(sub), json: { scopes: [READ] } });
      assert.ok([200, 404, 409].includes(r.status), `check for ${sub}: ${r.status} ${r.text}`);
    }
    // bob connects (so that there is a connection to revoke later).
    await server.connect(await idp.token('bob'), APP, [READ]);

    // ----- Create the Viewers policy, with its replay preview ----------------------------------
    await check('access-control');
    await page.getByLabel('Name', { exact: true }).fill('Viewers read');
    await page.getByLabel('Description').fill('Viewers and editors read calendars');
    await page.getByLabel('Operator').selectOption('in');
    await page.getByLabel('Value(s)').fill('Viewer, Editor');
    await page.getByRole('checkbox', { name: READ }).check();
    // A broken draft first: a claim condition without its claim is shown beside the field.
    await page.getByRole('button', { name: 'Add condition' }).click();
    await page.getByRole('group', { name: 'Condition 2' }).getByLabel('Source').selectOption('jwtClaims');
    await page.getByRole('group', { name: 'Condition 2' }).getByLabel('Value(s)').fill('acme');
    await page.getByRole('button', { name: 'Preview impact' }).click();
    const claimError = page.getByRole('group', { name: 'Condition 2' }).locator('.field-error');
    await claimError.filter({ hasText: 'claim' }).waitFor();
    await check('policy-inline-error');
    await page.getByRole('button', { name: 'Remove condition 2' }).click();
    assert.equal(await page.getByRole('button', { name: 'Save policy' }).isDisabled(), true, 'no save before a preview');
    await page.getByRole('button', { name: 'Preview impact' }).click();
    const preview = page.locator('.preview');
    await preview.getByText('This change would deny 1 user who was allowed in the last 7 days: bob (calendar.readonly)').waitFor();
    await check('replay-preview');
    await page.getByRole('button', { name: 'Save policy' }).click();
    await sees('The policy "Viewers read" is saved.');
    await page.getByRole('cell', { name: 'Viewers read' }).first().waitFor();
    await sees('userRoles in [Viewer, Editor]');

    // A second draft: the preview replays the recorded decisions (made while the app was open)
    // against the whole draft set, so bob is still among those who would lose access.
    await page.getByLabel('Name', { exact: true }).fill('Editors write');
    await page.getByLabel('Value(s)').fill('Editor');
    await page.getByLabel('Operator').selectOption('contains');
    await page.getByRole('checkbox', { name: WRITE }).check();
    await page.getByRole('button', { name: 'Preview impact' }).click();
    await preview.getByRole('heading', { name: 'Impact of this change' }).waitFor();
    assert.match(await preview.innerText(), /Replayed 2 decisions in the last 7 days; 1 would change\./);
    await check('access-control-policies');

    // ----- Edit a policy: a narrowing shows who would lose access; a harmless change is saved ----
    await page.getByRole('button', { name: 'Edit policy Viewers read' }).click();
    await page.getByRole('heading', { name: 'Edit policy Viewers read' }).waitFor();
    assert.equal(await page.getByLabel('Value(s)').inputValue(), 'Viewer, Editor', 'the form holds the stored policy');
    await page.getByLabel('Value(s)').fill('Editor');
    await page.getByRole('button', { name: 'Preview impact' }).click();
    await preview.getByText(/This change would deny 2 users who were allowed in the last 7 days: .*vera \(calendar\.readonly\)/).waitFor();
    await check('edit-policy-preview');
    await page.getByLabel('Value(s)').fill('Viewer, Editor');
    await page.getByLabel('Description').fill('Viewers and editors read every calendar');
    await page.getByRole('button', { name: 'Preview impact' }).click();
    // Replayed against what was decided then (the app was open): only bob loses, as before.
    await preview.getByText('This change would deny 1 user who was allowed in the last 7 days: bob (calendar.readonly)').waitFor();
    await page.getByRole('button', { name: 'Save policy' }).click();
    await sees('The policy "Viewers read" is updated.');
    const stored = (await server.must('GET', `/v1/mgmt/outbound-apps/${APP}/policies`)).items;
    assert.equal(stored.length, 1, 'edited in place, not added');
    assert.equal(stored[0].description, 'Viewers and editors read every calendar');
    assert.deepEqual(stored[0].conditions, [{ source: 'userRoles', operator: 'in', value: ['Viewer', 'Editor'] }]);

    // ----- The no-match behaviour --------------------------------------------------------------
    await page.getByRole('radio', { name: /^Re-consent/ }).check();
    await page.getByRole('button', { name: 'Save no-match behaviour' }).click();
    await sees('Requests no policy allows are asked to re-consent.');
    assert.equal((await server.must('GET', `/v1/mgmt/outbound-apps/${APP}`)).onDeny, 'reconsent');
    await page.getByRole('radio', { name: /^Refuse/ }).check();
    await page.getByRole('button', { name: 'Save no-match behaviour' }).click();
    await sees('Requests no policy allows are refused.');
    assert.equal((await server.must('GET', `/v1/mgmt/outbound-apps/${APP}`)).onDeny, 'forbid');

    // ----- The Test panel ---------------------------------------------------------------------
    await page.getByRole('link', { name: 'Test' }).click();
    await page.getByLabel('User', { exact: true }).waitFor();
    await check('test-panel');
    await page.getByLabel('User', { exact: true }).fill('vera');
    await page.getByRole('checkbox', { name: WRITE }).uncheck();
    await page.getByRole('button', { name: 'Run the test' }).click();
    await page.locator('.verdict.allow').waitFor();
    await sees('Deciding policies: Viewers read.');
    await page.getByLabel('User', { exact: true }).fill('bob');
    await page.getByRole('button', { name: 'Run the test' }).click();
    await page.locator('.verdict.deny').waitFor();
    await sees('Denied scopes: calendar.readonly.');
    await sees('Viewers read (enforce): did not match — condition 1 failed');
    await check('test-denied');
    // Claims that are not JSON are refused beside the field.
    await page.getByLabel('Claims (JSON)').fill('{nope');
    await page.getByRole('button', { name: 'Run the test' }).click();
    await page.locator('.field-error').filter({ hasText: 'not valid JSON' }).waitFor();
    // A pasted token: verified like a real request, then its user decides.
    await page.getByRole('radio', { name: 'A pasted token' }).check();
    await page.getByLabel('Inbound token').fill('eyJhbGciOiJub25lIn0.e30.');
    await page.getByRole('button', { name: 'Run the test' }).click();
    await page.locator('.field-error').filter({ hasText: 'the token is not valid' }).waitFor();
    await page.getByLabel('Inbound token').fill(await idp.token('vera'));
    await page.getByRole('button', { name: 'Run the test' }).click();
    await page.locator('.verdict.allow').waitFor();
    await sees('Evaluated as vera with roles Viewer');
    await check('test-token');

    // ----- Token Management: revoke bob's connection -------------------------------------------
    await page.getByRole('link', { name: 'Token Management' }).click();
    await page.getByRole('cell', { name: 'user bob', exact: true }).waitFor();
    await check('connections');
    await page.getByRole('button', { name: 'Force refresh the connection of user bob' }).click();
    await sees('The connection of user bob was refreshed.');
    await page.getByRole('button', { name: 'Revoke the connection of user bob' }).click();
    await sees('The connection of user bob was revoked.');
    await sees('No connection is stored for this app.');

    // ----- Settings ---------------------------------------------------------------------------
    await page.getByRole('link', { name: 'Settings' }).click();
    await page.getByRole('heading', { name: 'Settings' }).waitFor();
    assert.equal(await page.getByLabel('Token URL').inputValue(), `${provider.url}/token`);
    assert.equal(await page.getByLabel('Client secret').inputValue(), '', 'a stored secret is never shown');
    await check('settings');
    // A refusal is shown beside its field, and nothing is stored.
    await page.getByLabel('Token URL').fill('not a url');
    await page.getByRole('button', { name: 'Save settings' }).click();
    await page.locator('.field-error').filter({ hasText: /tokenUrl|URL/ }).first().waitFor();
    assert.equal((await server.must('GET', `/v1/mgmt/outbound-apps/${APP}`)).tokenUrl, `${provider.url}/token`);
    await page.getByLabel('Token URL').fill(`${provider.url}/token`);
    await page.getByLabel('Name', { exact: true }).fill('Team calendar');
    await page.getByLabel('Scopes', { exact: true }).fill(`${READ}: Read calendars\n${WRITE}: Change events`);
    await page.getByRole('button', { name: 'Save settings' }).click();
    await sees('The settings are saved.');
    const saved = await server.must('GET', `/v1/mgmt/outbound-apps/${APP}`);
    assert.equal(saved.name, 'Team calendar');
    assert.deepEqual(saved.scopes, [{ name: READ, description: 'Read calendars' }, { name: WRITE, description: 'Change events' }]);
    assert.equal(saved.hasClientSecret, true, 'the stored secret was kept');

    // ----- The dashboard: the decisions recorded above, charted --------------------------------
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Dashboard' }).click();
    const byOutcome = page.getByRole('img', { name: /Decisions by outcome/ });
    await byOutcome.waitFor();
    // vera's and bob's checks, while the app was open (allowed by the policies, then connected or not).
    assert.match(await page.locator('svg.chart desc').nth(0).textContent(), /^2 decisions: /);
    assert.ok((await page.locator('svg.chart rect.bar').count()) >= 2, 'bars are drawn');
    await page.getByRole('img', { name: /Decisions by app/ }).waitFor();
    assert.equal(await page.locator('svg.chart desc').nth(1).textContent(), `2 decisions: ${APP} 2.`);
    await page.getByRole('table', { name: 'Slowest apps' }).getByRole('link', { name: APP }).waitFor();
    await page.getByText('Show the numbers as a table').first().click();
    await page.getByRole('table', { name: 'Decisions by outcome' }).waitFor();
    await check('dashboard');
    await page.getByLabel('Window').selectOption('1h');
    await page.getByRole('button', { name: 'Show', exact: true }).click();
    await sees('Last hour:');

    // ----- The audit log ----------------------------------------------------------------------
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Audit log' }).click();
    await page.getByRole('heading', { name: 'Audit log' }).waitFor();
    await page.getByRole('table', { name: 'Token decisions' }).waitFor();
    await page.getByLabel('Log').selectOption('management');
    await page.getByLabel('App id').fill(`outbound-apps/${APP}`);
    await page.getByRole('button', { name: 'Show events' }).click();
    const changes = page.getByRole('table', { name: 'Management changes' });
    await changes.getByRole('cell', { name: 'policy.create' }).waitFor();
    await changes.getByRole('cell', { name: 'app.create' }).waitFor();
    assert.match(await changes.innerText(), /bootstrap \(ak_/);
    await check('audit-management');

    // ----- Sign out ---------------------------------------------------------------------------
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByLabel('Admin key').waitFor();
    await page.reload();
    await page.getByLabel('Admin key').waitFor();
    assert.deepEqual(csp, [], 'no Content-Security-Policy violation');
  });

  test('a Portcullis user who holds an admin role signs in to the console with their password', async () => {
    await server.must('POST', '/v1/mgmt/roles', { name: 'portcullis.read' });
    await server.createUser({ id: 'ines', name: 'Ines Auditor', roles: ['portcullis.read'] });
    await server.must('PUT', '/v1/mgmt/users/ines/password', { password: 'correct horse battery' });
    await server.createUser({ id: 'olaf', roles: [] });
    await server.must('PUT', '/v1/mgmt/users/olaf/password', { password: 'correct horse battery' });

    // A user without an admin role signs in to Portcullis but is told why the console is closed.
    await page.goto(`${server.url}/console`);
    await page.getByRole('link', { name: 'Sign in with your Portcullis account' }).click();
    await page.getByLabel('User id or email').fill('olaf');
    await page.getByLabel('Password').fill('correct horse battery');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByText('holds no Portcullis admin role').waitFor();

    // A fresh browser session for ines: Portcullis's sign-in page, then the console as her.
    await page.context().clearCookies();
    await page.goto(`${server.url}/console`);
    await check('sign-in-choices');
    await page.getByRole('link', { name: 'Sign in with your Portcullis account' }).click();
    await page.getByLabel('User id or email').fill('ines');
    await page.getByLabel('Password').fill('correct horse battery');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Dashboard', exact: true }).waitFor();
    assert.equal(await page.locator('#who-name').textContent(), 'Signed in as Ines Auditor (user:ines)');
    // Her role grants read: she sees the apps, and a change is refused with the scope it needs.
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Outbound apps' }).click();
    await page.getByRole('link', { name: 'Team calendar' }).click();
    await page.getByRole('radio', { name: /^Re-consent/ }).check();
    await page.getByRole('button', { name: 'Save no-match behaviour' }).click();
    await page.locator('.form-error [role=alert]').filter({ hasText: 'scope apps' }).waitFor();
    assert.equal((await server.must('GET', `/v1/mgmt/outbound-apps/${APP}`)).onDeny, 'forbid');
    await check('user-session');
  });
});
