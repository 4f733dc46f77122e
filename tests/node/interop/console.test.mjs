// The admin console at /console, end to end in a real browser: headless Chromium (the system's
// /usr/bin/chromium, driven by playwright-core; no browser is downloaded) against a real
// `portcullis serve`. An admin signs in with the key, registers an app, writes the Viewers policy
// through the form after seeing its replay preview, runs the Test panel, revokes a connection and
// finds the change in the audit log. axe-core checks every page visited (no serious or critical
// violation); screenshots go to CONSOLE_SCREENSHOTS (default: a temporary directory).

import assert from 'node:assert/strict';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { chromium } from 'playwright-core';

import { startWorld } from '../lib/harness.mjs';

const require = createRequire(import.meta.url);
const AXE_SOURCE = fs.readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
const APP = 'calendar';
const READ = 'calendar.readonly';
const WRITE = 'calendar.events';

describe('the admin console in a browser', { timeout: 180_000 }, () => {
  let world;
  let server;
  let browser;
  let userDataDir;
  let context;
  let page;
  let shots;
  let shot = 0;

  before(async () => {
    assert.ok(fs.existsSync(CHROMIUM), `no Chromium at ${CHROMIUM}: apt-get install chromium`);
    world = await startWorld();
    server = world.server;
    shots = process.env.CONSOLE_SCREENSHOTS || (await fsp.mkdtemp(path.join(os.tmpdir(), 'console-screenshots-')));
    await fsp.mkdir(shots, { recursive: true });
    userDataDir = await fsp.mkdtemp(path.join(os.tmpdir(), 'console-chromium-'));
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
    browser = context;
    page = context.pages()[0] || (await context.newPage());
    // Deletions and revocations ask for confirmation.
    page.on('dialog', (d) => d.accept());
    // A CSP violation or a script error fails the test.
    page.on('pageerror', (e) => {
      throw e;
    });
  });

  after(async () => {
    await browser?.close();
    if (userDataDir) await fsp.rm(userDataDir, { recursive: true, force: true });
    await world?.stop();
  });

  /** A screenshot named after the step, then axe-core on the page as it is. */
  async function check(name) {
    shot += 1;
    await page.screenshot({ path: path.join(shots, `${String(shot).padStart(2, '0')}-${name}.png`), fullPage: true });
    // The console's CSP refuses injected <script> tags (page.addScriptTag): axe-core goes in
    // through the DevTools protocol instead, which the page's policy does not govern.
    if (!(await page.evaluate(() => typeof window.axe === 'object'))) await page.evaluate(AXE_SOURCE);
    const result = await page.evaluate(async () => {
      // eslint-disable-next-line no-undef
      const r = await axe.run(document, { resultTypes: ['violations'] });
      return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => n.target.join(' ')) }));
    });
    const bad = result.filter((v) => v.impact === 'serious' || v.impact === 'critical');
    assert.deepEqual(bad, [], `${name}: accessibility violations ${JSON.stringify(bad, null, 2)}`);
  }

  /** Waits for the text to show in the main region. */
  const sees = (text) => page.locator('main').getByText(text, { exact: false }).first().waitFor();

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

    // ----- The Test panel ---------------------------------------------------------------------
    await page.getByRole('link', { name: 'Test' }).click();
    await page.getByLabel('User').waitFor();
    await check('test-panel');
    await page.getByLabel('User').fill('vera');
    await page.getByRole('checkbox', { name: WRITE }).uncheck();
    await page.getByRole('button', { name: 'Run the test' }).click();
    await page.locator('.verdict.allow').waitFor();
    await sees('Deciding policies: Viewers read.');
    await page.getByLabel('User').fill('bob');
    await page.getByRole('button', { name: 'Run the test' }).click();
    await page.locator('.verdict.deny').waitFor();
    await sees('Denied scopes: calendar.readonly.');
    await sees('Viewers read (enforce): did not match — condition 1 failed');
    await check('test-denied');
    // Claims that are not JSON are refused beside the field.
    await page.getByLabel('Claims (JSON)').fill('{nope');
    await page.getByRole('button', { name: 'Run the test' }).click();
    await page.locator('.field-error').filter({ hasText: 'not valid JSON' }).waitFor();

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
    await page.getByRole('heading', { name: 'Settings' }).waitFor().catch(async (e) => {
      await page.screenshot({ path: path.join(shots, 'failed-settings.png'), fullPage: true });
      throw e;
    });
    await page.locator('dl.settings dt', { hasText: 'tokenUrl' }).waitFor();
    await check('settings');

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
});
