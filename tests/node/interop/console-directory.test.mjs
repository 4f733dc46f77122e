// The console's directory section end to end in a real browser (headless Chromium driven by
// playwright-core, against a real `portcullis serve`): an admin signs in with the key, creates the
// roles Viewer and Editor on the Roles page (a second Viewer is refused beside the Name field) and
// edits Viewer's description, creates tenants (the id derived from the name) and deletes one,
// creates a user with a role, an identity link and a tenant membership through the form (an issuer
// with a space is refused beside that link's Issuer field, an email another user has beside the
// Email field), changes the user's roles, sets a password (a short one is refused beside the
// field), revokes the user's connections, walks the user list a page at a time, opens a user by
// id, deletes a role (one still held is refused) and deletes a user. Every outcome is checked
// against the stored state through the API; axe-core checks each page (no serious or critical
// violation).

import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';

import { consoleWorld, navigate, signInWithKey } from '../lib/console.mjs';

const ISSUER = 'https://idp.example.test';

describe('the console\'s directory: users, roles and tenants', { timeout: 240_000 }, () => {
  const held = consoleWorld('console-directory');
  let server;
  let page;
  let check;
  let sees;
  let dialogs;
  before(() => ({ server, page, check, sees, dialogs } = held));

  /** The API's status for `path` (with the admin key). */
  const status = async (p) => (await server.admin('GET', p)).status;

  /** The inline error beside `control` (marked invalid, its error slot shown): its text. */
  async function errorBeside(control) {
    const id = await control.getAttribute('id');
    const slot = page.locator(`[id="${id}-error"]`);
    await slot.waitFor();
    assert.equal(await control.getAttribute('aria-invalid'), 'true', `the control ${id} is marked invalid`);
    // The error is the control's accessible description.
    assert.match(await control.getAttribute('aria-describedby'), new RegExp(`\\b${id}-error\\b`));
    return slot.innerText();
  }

  /** The ok banner with `text`. */
  const okBanner = (text) => page.locator('main .banner.ok').filter({ hasText: text }).first().waitFor();

  test('an admin manages the directory from the console', async () => {
    await signInWithKey(page, server.url, server.adminKey);

    // ----- Roles -------------------------------------------------------------------------------
    await navigate(page, 'Roles');
    await sees('No role exists yet.');
    await check('roles-empty');
    for (const [name, description] of [['Viewer', 'Reads calendars'], ['Editor', 'Writes calendars']]) {
      await page.getByLabel('Name', { exact: true }).fill(name);
      await page.getByLabel('Description', { exact: true }).fill(description);
      await page.getByRole('button', { name: 'Create role' }).click();
      await okBanner(`The role "${name}" is created.`);
    }
    const roles = await server.must('GET', '/v1/mgmt/roles');
    assert.deepEqual(roles.items.map((r) => [r.name, r.description]).sort(), [['Editor', 'Writes calendars'], ['Viewer', 'Reads calendars']]);
    await page.getByRole('table', { name: 'Roles, by name' }).getByRole('link', { name: 'Viewer' }).waitFor();
    await check('roles-two');

    // A role that exists is refused beside the Name field.
    await page.getByLabel('Name', { exact: true }).fill('Viewer');
    await page.getByRole('button', { name: 'Create role' }).click();
    assert.match(await errorBeside(page.getByLabel('Name', { exact: true })), /already exists/);
    await check('roles-duplicate');

    // A role's page: its description edited.
    await page.getByRole('link', { name: 'Viewer', exact: true }).click();
    await page.getByRole('heading', { name: 'Role Viewer', level: 1 }).waitFor();
    await page.getByLabel('Description', { exact: true }).fill('Reads calendars and contacts');
    await page.getByRole('button', { name: 'Save description' }).click();
    await okBanner('The description of Viewer is saved.');
    assert.equal((await server.must('GET', '/v1/mgmt/roles/Viewer')).description, 'Reads calendars and contacts');
    await check('role-page');

    // ----- Tenants -----------------------------------------------------------------------------
    await navigate(page, 'Tenants');
    await sees('No tenant exists yet.');
    await check('tenants-empty');
    await page.getByLabel('Name', { exact: true }).fill('Acme Corp');
    // The id the name suggests is shown in the Id field's hint.
    await page.locator('main .hint').filter({ hasText: 'acme-corp when empty' }).waitFor();
    await page.getByRole('button', { name: 'Create tenant' }).click();
    await okBanner('The tenant "Acme Corp" (acme-corp) is created.');
    await page.getByLabel('Name', { exact: true }).fill('Globex');
    await page.getByRole('button', { name: 'Create tenant' }).click();
    await okBanner('The tenant "Globex" (globex) is created.');
    assert.equal((await server.must('GET', '/v1/mgmt/tenants/acme-corp')).name, 'Acme Corp');
    assert.equal((await server.must('GET', '/v1/mgmt/tenants/globex')).name, 'Globex');
    await check('tenants-two');
    await page.getByRole('button', { name: 'Delete tenant Globex (globex)' }).click();
    await okBanner('The tenant "Globex" is deleted.');
    assert.match(dialogs.at(-1), /Delete the tenant "Globex"/);
    assert.equal(await status('/v1/mgmt/tenants/globex'), 404);
    // Renamed on its page (PUT keeps its id).
    await page.getByRole('link', { name: 'Acme Corp', exact: true }).click();
    await page.getByRole('heading', { name: 'Acme Corp (acme-corp)', level: 1 }).waitFor();
    await page.getByLabel('Name', { exact: true }).fill('Acme Corporation');
    await page.getByRole('button', { name: 'Save name' }).click();
    await okBanner('The tenant is renamed "Acme Corporation".');
    assert.equal((await server.must('GET', '/v1/mgmt/tenants/acme-corp')).name, 'Acme Corporation');
    await check('tenant-page');

    // ----- Create a user -----------------------------------------------------------------------
    await navigate(page, 'Users');
    await sees('No user is in the directory yet.');
    await check('users-empty');
    await page.getByRole('link', { name: 'Create a user' }).click();
    await page.getByRole('heading', { name: 'Create a user', level: 1 }).waitFor();
    await page.getByLabel('Id', { exact: true }).fill('alice');
    await page.getByLabel('Name', { exact: true }).fill('Alice Liddell');
    await page.getByLabel('Email', { exact: true }).fill('alice@example.test');
    await page.getByRole('group', { name: 'Roles', exact: true }).getByLabel('Viewer', { exact: true }).check();
    await page.getByRole('button', { name: 'Add identity link' }).click();
    const link = page.getByRole('group', { name: 'Identity link 1' });
    // An issuer is an exact iss: the API refuses one with a space.
    await link.getByLabel('Issuer', { exact: true }).fill('idp example');
    await link.getByLabel('Subject', { exact: true }).fill('alice-at-idp');
    await page.getByRole('button', { name: 'Add tenant membership' }).click();
    const membership = page.getByRole('group', { name: 'Tenant membership 1' });
    await membership.getByLabel('Tenant', { exact: true }).selectOption('acme-corp');
    await membership.getByRole('group', { name: 'Roles in tenant membership 1' }).getByLabel('Editor', { exact: true }).check();
    await check('create-user-form');
    await page.getByRole('button', { name: 'Create user' }).click();
    assert.match(await errorBeside(link.getByLabel('Issuer', { exact: true })), /identities\[0\]\.issuer must be/);
    // Only that field is marked.
    assert.equal(await page.locator('main [aria-invalid="true"]').count(), 1);
    assert.equal(await status('/v1/mgmt/users/alice'), 404, 'nothing is stored');
    await check('create-user-refused');
    await link.getByLabel('Issuer', { exact: true }).fill(ISSUER);
    await page.getByRole('button', { name: 'Create user' }).click();
    await page.getByRole('heading', { name: 'Alice Liddell (alice)', level: 1 }).waitFor();
    await okBanner('The user "Alice Liddell" is created.');
    let alice = await server.must('GET', '/v1/mgmt/users/alice');
    assert.equal(alice.name, 'Alice Liddell');
    assert.equal(alice.email, 'alice@example.test');
    assert.deepEqual(alice.roles, ['Viewer']);
    assert.deepEqual(alice.identities, [{ issuer: ISSUER, subject: 'alice-at-idp' }]);
    assert.deepEqual(alice.tenants, [{ tenantId: 'acme-corp', roles: ['Editor'] }]);
    assert.equal(alice.disabled, false);
    await sees('This user has no connection.');
    await sees('This user has no remembered consent.');
    await check('user-page');

    // An email another user has is refused beside the Email field.
    await navigate(page, 'Users');
    await page.getByRole('link', { name: 'Create a user' }).click();
    await page.getByRole('heading', { name: 'Create a user', level: 1 }).waitFor();
    await page.getByLabel('Id', { exact: true }).fill('bob');
    await page.getByLabel('Email', { exact: true }).fill('alice@example.test');
    await page.getByRole('button', { name: 'Create user' }).click();
    assert.match(await errorBeside(page.getByLabel('Email', { exact: true })), /email already exists/);
    assert.equal(await status('/v1/mgmt/users/bob'), 404);
    await page.getByLabel('Email', { exact: true }).fill('bob@example.test');
    await page.getByRole('button', { name: 'Create user' }).click();
    await page.getByRole('heading', { name: 'bob', exact: true, level: 1 }).waitFor();
    assert.equal((await server.must('GET', '/v1/mgmt/users/bob')).email, 'bob@example.test');

    // ----- Edit the user -----------------------------------------------------------------------
    // A connection to revoke later: an API key stored for alice.
    await server.createApp({ id: 'weather', name: 'Weather', type: 'apiKey' });
    await server.must('POST', '/v1/mgmt/outbound-apps/weather/api-keys', { apiKey: 'weather-key-of-alice', userId: 'alice' });
    await page.goto(`${server.url}/console#/users/alice`);
    await page.getByRole('heading', { name: 'Alice Liddell (alice)', level: 1 }).waitFor();
    const roleBoxes = page.getByRole('group', { name: 'Roles', exact: true });
    assert.equal(await roleBoxes.getByLabel('Viewer', { exact: true }).isChecked(), true);
    await roleBoxes.getByLabel('Viewer', { exact: true }).uncheck();
    await roleBoxes.getByLabel('Editor', { exact: true }).check();
    await page.getByLabel('Disabled: the user gets no outbound token').check();
    await page.getByRole('button', { name: 'Save changes' }).click();
    await okBanner('The user "Alice Liddell" is saved.');
    alice = await server.must('GET', '/v1/mgmt/users/alice');
    assert.deepEqual(alice.roles, ['Editor']);
    assert.equal(alice.disabled, true);
    // What the form did not change is kept (PUT replaces the whole record).
    assert.deepEqual(alice.identities, [{ issuer: ISSUER, subject: 'alice-at-idp' }]);
    assert.deepEqual(alice.tenants, [{ tenantId: 'acme-corp', roles: ['Editor'] }]);
    assert.equal(alice.email, 'alice@example.test');
    // The page shows the stored record.
    assert.equal(await page.getByRole('group', { name: 'Roles', exact: true }).getByLabel('Viewer', { exact: true }).isChecked(), false);
    assert.equal(await page.getByRole('group', { name: 'Roles', exact: true }).getByLabel('Editor', { exact: true }).isChecked(), true);

    // ----- Password ----------------------------------------------------------------------------
    await page.getByLabel('New password').fill('short');
    await page.getByRole('button', { name: 'Set password' }).click();
    assert.match(await errorBeside(page.getByLabel('New password')), /8 to 256 characters/);
    await page.getByLabel('New password').fill('correct horse battery staple');
    await page.getByRole('button', { name: 'Set password' }).click();
    await okBanner('The password is set.');
    assert.equal(await page.getByLabel('New password').inputValue(), '', 'the password is not kept in the page');
    const set = await server.must('GET', '/v1/mgmt/audit?kind=management&action=user.password.set&target=users/alice/password');
    assert.equal(set.items.length, 1, 'the password was set once');

    // ----- Connections -------------------------------------------------------------------------
    const connections = page.getByRole('table', { name: 'Connections of Alice Liddell' });
    await connections.getByRole('link', { name: 'weather' }).waitFor();
    await check('user-edited');
    await page.getByRole('button', { name: 'Revoke all connections of Alice Liddell' }).click();
    await okBanner('Revoked 1 connection.');
    assert.match(dialogs.at(-1), /Revoke every connection of "Alice Liddell"/);
    assert.deepEqual((await server.must('GET', '/v1/mgmt/users/alice/connections')).items, []);
    await sees('This user has no connection.');
    await check('user-connections-revoked');

    // ----- The list, a page at a time ----------------------------------------------------------
    for (let i = 1; i <= 25; i += 1) await server.createUser({ id: `bulk-${String(i).padStart(2, '0')}`, name: `Bulk user ${i}` });
    await navigate(page, 'Users');
    const users = page.getByRole('table', { name: 'Users, by id' });
    await users.getByRole('link', { name: 'alice', exact: true }).waitFor();
    // By id: alice, bob, bulk-01 … bulk-18 on the first page of 20.
    assert.equal(await users.locator('tbody tr').count(), 20);
    assert.equal(await users.getByRole('link', { name: 'bulk-18', exact: true }).count(), 1);
    assert.equal(await users.getByRole('link', { name: 'bulk-19', exact: true }).count(), 0);
    const aliceRow = users.locator('tr').filter({ has: page.getByRole('link', { name: 'alice', exact: true }) });
    assert.match(await aliceRow.innerText(), /Alice Liddell\s+alice@example\.test\s+Editor\s+acme-corp \(Editor\)\s+Disabled/);
    assert.equal(await page.getByRole('button', { name: 'Previous page' }).count(), 0);
    await check('users-page-1');
    await page.getByRole('button', { name: 'Next page' }).click();
    await users.getByRole('link', { name: 'bulk-25', exact: true }).waitFor();
    assert.equal(await users.locator('tbody tr').count(), 7);
    assert.equal(await users.getByRole('link', { name: 'alice', exact: true }).count(), 0);
    assert.equal(await page.getByRole('button', { name: 'Next page' }).count(), 0);
    await check('users-page-2');
    await page.getByRole('button', { name: 'Previous page' }).click();
    await users.getByRole('link', { name: 'alice', exact: true }).waitFor();
    assert.equal(await users.getByRole('link', { name: 'bulk-25', exact: true }).count(), 0);

    // A user opened by id; an unknown id is refused beside the field.
    await page.getByLabel('User id').fill('nobody');
    await page.getByRole('button', { name: 'Open user' }).click();
    assert.match(await errorBeside(page.getByLabel('User id')), /user nobody not found/);
    await page.getByLabel('User id').fill('bulk-07');
    await page.getByRole('button', { name: 'Open user' }).click();
    await page.getByRole('heading', { name: 'Bulk user 7 (bulk-07)', level: 1 }).waitFor();

    // ----- Delete a role -----------------------------------------------------------------------
    await navigate(page, 'Roles');
    // Editor is held by alice: refused, and kept.
    await page.getByRole('button', { name: 'Delete role Editor' }).click();
    await page.locator('main [role=alert]').filter({ hasText: 'The role "Editor" cannot be deleted' }).waitFor();
    assert.equal(await status('/v1/mgmt/roles/Editor'), 200);
    await check('roles-delete-refused');
    await page.getByRole('button', { name: 'Delete role Viewer' }).click();
    await okBanner('The role "Viewer" is deleted.');
    assert.match(dialogs.at(-1), /Delete the role "Viewer"/);
    assert.equal(await status('/v1/mgmt/roles/Viewer'), 404);
    assert.equal(await page.getByRole('table', { name: 'Roles, by name' }).getByRole('link', { name: 'Viewer', exact: true }).count(), 0);
    await check('roles-deleted');

    // ----- Delete a user -----------------------------------------------------------------------
    await page.goto(`${server.url}/console#/users/bob`);
    await page.getByRole('heading', { name: 'bob', exact: true, level: 1 }).waitFor();
    await page.getByRole('button', { name: 'Delete user bob' }).click();
    await page.getByRole('heading', { name: 'Users', exact: true, level: 1 }).waitFor();
    await okBanner('The user "bob" is deleted.');
    assert.match(dialogs.at(-1), /Delete the user "bob"/);
    assert.equal(await status('/v1/mgmt/users/bob'), 404);
    await check('user-deleted');
  });
});
