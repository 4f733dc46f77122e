// The scenario the interop tests share: a "calendar" outbound app at the stand-in provider, with
// two enforcing policies, and users in each situation the token path distinguishes.
//
//   alice  editor, connected (calendar.read)       → allowed every calendar scope
//   bob    no role, connected (calendar.read)      → denied: no policy matches
//   dave   viewer, connected (calendar.read)       → calendar.read only
//   carol  editor, never connected                 → not connected
//   erin   editor, never connected                 → not connected (a test connects her)
//
// Everyone connects while the app is still open (no policy yet): once a policy exists, a user the
// policies deny cannot even start a consent.

import assert from 'node:assert/strict';

export const APP = 'calendar';
export const READ = 'calendar.read';
export const WRITE = 'calendar.write';

/** The Editors policy document (its `value` can be swapped to take access away). */
export const editorsPolicy = (role = 'editor') => ({
  name: 'Editors',
  description: 'Editors read and write calendars',
  conditions: [{ source: 'userRoles', operator: 'contains', value: role }],
  scopes: [READ, WRITE],
});

export const viewersPolicy = () => ({
  name: 'Viewers',
  conditions: [{ source: 'userRoles', operator: 'contains', value: 'viewer' }],
  scopes: [READ],
});

/**
 * Builds the scenario on a started world (see `startWorld`). Returns the policies and a `token(sub)`
 * function minting inbound tokens.
 */
export async function setupCalendar({ server, idp, provider }) {
  // The tests read every denial's whole explanation (the default leaves out the values).
  await server.createApp(provider.app(APP, [READ, WRITE], { denialDetail: 'full' }));
  for (const role of ['editor', 'viewer', 'admin']) await server.createRole(role);
  const users = { alice: ['editor'], bob: [], dave: ['viewer'], carol: ['editor'], erin: ['editor'] };
  // Each directory user is linked to the IdP's subject of the same name.
  for (const [id, roles] of Object.entries(users)) {
    await server.createUser({ id, roles, identities: idp.identity(id) });
  }
  const token = (sub, options) => idp.token(sub, options);
  // The provider's access tokens are JWTs without a jti: two issued in the same second are the
  // same string. Connect one user per second so that each holds a token of their own, and keep
  // them to check that each user gets exactly theirs.
  const providerTokens = {};
  for (const sub of ['alice', 'bob', 'dave']) {
    await nextSecond();
    await server.connect(await token(sub), APP, [READ]);
    const r = await server.fetchToken(await token(sub), APP, { scopes: [READ] });
    assert.equal(r.status, 200, `${sub} fetches while the app is open: ${r.text}`);
    providerTokens[sub] = r.body.token.accessToken;
  }
  assert.equal(new Set(Object.values(providerTokens)).size, 3, 'each user holds a distinct provider token');
  const editors = await server.createPolicy(APP, editorsPolicy());
  const viewers = await server.createPolicy(APP, viewersPolicy());
  return { editors, viewers, token, providerTokens };
}

/** Waits until the wall clock enters the next second. */
export async function nextSecond() {
  await new Promise((r) => setTimeout(r, 1005 - (Date.now() % 1000)));
}
