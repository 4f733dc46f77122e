// The token endpoint MCP servers call, `POST /v1/outbound/apps/{appId}/token`, from plain `fetch`:
// each outcome on the wire, a connect URL that really connects, policy and role changes taking
// effect on the very next request, and (with jose) that the token handed out is the provider's JWT.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import * as jose from 'jose';

import { startWorld } from '../lib/harness.mjs';
import { APP, READ, WRITE, editorsPolicy, setupCalendar } from '../lib/scenario.mjs';

describe('POST /v1/outbound/apps/{appId}/token', { timeout: 120_000 }, () => {
  let world;
  let s;
  let server;

  before(async () => {
    world = await startWorld();
    server = world.server;
    s = await setupCalendar(world);
  });

  after(async () => {
    await world?.stop();
  });

  test('an allowed user gets her own provider token, and the decision that allowed it', async () => {
    const r = await server.fetchToken(await s.token('alice'), APP, { scopes: [READ] });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.headers.get('cache-control'), 'no-store');
    const { token, decision } = r.body;
    assert.equal(token.accessToken, s.providerTokens.alice);
    assert.equal(token.tokenType, 'Bearer');
    assert.deepEqual(token.scopes, [READ]);
    assert.equal(token.appId, APP);
    assert.equal(token.userId, 'alice');
    assert.equal(token.owner, 'user');
    assert.equal(token.apiKey, undefined);
    const expiresIn = (Date.parse(token.expiresAt) - Date.now()) / 1000;
    assert.ok(expiresIn > 3500 && expiresIn <= 3600, `expiresAt ${token.expiresAt} is about an hour away`);
    assert.deepEqual(decision, {
      outcome: 'allow',
      reason: 'matched',
      decidingPolicies: [s.editors.id],
      allowedScopes: [READ, WRITE],
      downscoped: false,
    });
  });

  test('the token handed out is the provider\'s JWT, verified against the provider\'s JWKS', async () => {
    const r = await server.fetchToken(await s.token('alice'), APP, { scopes: [READ] });
    assert.equal(r.status, 200, r.text);
    const jwks = jose.createRemoteJWKSet(new URL(`${world.provider.url}/jwks`));
    const { payload, protectedHeader } = await jose.jwtVerify(r.body.token.accessToken, jwks, {
      issuer: world.provider.url,
      algorithms: ['RS256'],
    });
    assert.equal(protectedHeader.alg, 'RS256');
    assert.equal(payload.sub, 'provider-user-1');
    // Not a token of the inbound IdP: its keys do not verify it.
    const idpJwks = jose.createLocalJWKSet({ keys: Object.values(world.idp.keys).map((k) => k.jwk) });
    await assert.rejects(jose.jwtVerify(r.body.token.accessToken, idpJwks), { code: 'ERR_JWKS_NO_MATCHING_KEY' });
  });

  test('a user no policy allows is denied with 403 and the explanation of every policy', async () => {
    const r = await server.fetchToken(await s.token('bob'), APP, { scopes: [READ] });
    assert.equal(r.status, 403, r.text);
    assert.equal(r.body.error, 'access_denied');
    assert.equal(r.body.token, undefined);
    assert.ok(!r.text.includes(s.providerTokens.bob), 'no trace of the stored token');
    assert.deepEqual(r.body.details, { reason: 'no_policy_matched' });
    const d = r.body.decision;
    assert.equal(d.outcome, 'deny');
    assert.equal(d.reason, 'noPolicyMatched');
    assert.deepEqual(d.requestedScopes, [READ]);
    assert.deepEqual(d.deniedScopes, [READ]);
    assert.deepEqual(d.allowedScopes, []);
    assert.deepEqual(d.decidingPolicies, []);
    assert.deepEqual(
      d.policies.map((p) => [p.id, p.name, p.matched, p.failedCondition]),
      [
        [s.editors.id, 'Editors', false, { index: 0, source: 'userRoles', operator: 'contains', value: 'editor', seen: [], reason: 'notSatisfied' }],
        [s.viewers.id, 'Viewers', false, { index: 0, source: 'userRoles', operator: 'contains', value: 'viewer', seen: [], reason: 'notSatisfied' }],
      ],
    );
  });

  test('a scope beyond what the matching policy allows is denied, naming that scope', async () => {
    const r = await server.fetchToken(await s.token('dave'), APP, { scopes: [READ, WRITE] });
    assert.equal(r.status, 403, r.text);
    assert.equal(r.body.error, 'access_denied');
    assert.deepEqual(r.body.details, { reason: 'scopes_not_allowed' });
    assert.deepEqual(r.body.decision.deniedScopes, [WRITE]);
    assert.deepEqual(r.body.decision.allowedScopes, [READ]);
    assert.deepEqual(r.body.decision.decidingPolicies, [s.viewers.id]);
    const viewers = r.body.decision.policies.find((p) => p.id === s.viewers.id);
    assert.equal(viewers.matched, true);
    assert.equal(viewers.failedCondition, undefined);
    const editors = r.body.decision.policies.find((p) => p.id === s.editors.id);
    assert.deepEqual(editors.failedCondition.seen, ['viewer']);
    // What the policy allows, dave gets.
    const ok = await server.fetchToken(await s.token('dave'), APP, { scopes: [READ] });
    assert.equal(ok.status, 200, ok.text);
    assert.equal(ok.body.token.accessToken, s.providerTokens.dave);
  });

  test('an unconnected user gets 404 with a connect URL that, followed, connects her', async () => {
    const carol = await s.token('carol');
    const r = await server.fetchToken(carol, APP, { scopes: [READ] });
    assert.equal(r.status, 404, r.text);
    assert.equal(r.body.error, 'not_connected');
    assert.deepEqual(r.body.details, { reason: 'no_connection', missingScopes: [READ] });
    // The link is a ticket on Portcullis; opened, it leads to the provider.
    const providerUrl = await server.openLink(r.body.connectUrl);
    const connectUrl = new URL(providerUrl);
    assert.equal(connectUrl.origin + connectUrl.pathname, `${world.provider.url}/authorize`);
    assert.equal(connectUrl.searchParams.get('scope'), READ);
    assert.equal(connectUrl.searchParams.get('redirect_uri'), `${server.url}/v1/outbound/callback/${APP}`);
    assert.equal(connectUrl.searchParams.get('code_challenge_method'), 'S256');

    const before = await world.provider.stats();
    const consent = await server.consent(providerUrl);
    assert.equal(consent.status, 200, consent.page);
    assert.match(consent.page, /calendar is connected/);
    assert.equal((await world.provider.stats()).authorization_code, before.authorization_code + 1);

    const again = await server.fetchToken(carol, APP, { scopes: [READ] });
    assert.equal(again.status, 200, again.text);
    assert.equal(again.body.token.userId, 'carol');
    assert.deepEqual(again.body.token.scopes, [READ]);
    const conns = await server.must('GET', `/v1/mgmt/outbound-apps/${APP}/connections`);
    assert.ok(
      conns.items.some((c) => c.userId === 'carol'),
      `carol's connection is listed: ${JSON.stringify(conns.items)}`,
    );
    // A connect link works once: a used one is gone (410).
    const replay = await server.consent(r.body.connectUrl);
    assert.equal(replay.status, 410);
  });

  test('a policy change takes effect on the very next request', async () => {
    const alice = await s.token('alice');
    const first = await server.fetchToken(alice, APP, { scopes: [READ] });
    assert.equal(first.status, 200, first.text);

    await server.updatePolicy(APP, s.editors.id, editorsPolicy('admin'));
    const denied = await server.fetchToken(alice, APP, { scopes: [READ] });
    assert.equal(denied.status, 403, denied.text);
    assert.equal(denied.body.error, 'access_denied');
    const editors = denied.body.decision.policies.find((p) => p.id === s.editors.id);
    assert.equal(editors.failedCondition.value, 'admin');
    assert.deepEqual(editors.failedCondition.seen, ['editor']);

    await server.updatePolicy(APP, s.editors.id, editorsPolicy('editor'));
    const back = await server.fetchToken(alice, APP, { scopes: [READ] });
    assert.equal(back.status, 200, back.text);
    assert.equal(back.body.token.accessToken, s.providerTokens.alice);
  });

  test('a role change takes effect on the very next request, with the same inbound token', async () => {
    const bob = await s.token('bob');
    assert.equal((await server.fetchToken(bob, APP, { scopes: [READ] })).status, 403);
    await server.updateUser('bob', { roles: ['editor'], identities: world.idp.identity('bob') });
    try {
      const r = await server.fetchToken(bob, APP, { scopes: [READ] });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.body.token.accessToken, s.providerTokens.bob);
      assert.deepEqual(r.body.decision.decidingPolicies, [s.editors.id]);
    } finally {
      await server.updateUser('bob', { roles: [], identities: world.idp.identity('bob') });
    }
    assert.equal((await server.fetchToken(bob, APP, { scopes: [READ] })).status, 403);
  });

  test('a user unknown to the directory is judged by the roles claim of the IdP\'s token', async () => {
    const asEditor = await s.token('frank', { alg: 'RS256', claims: { roles: ['editor'] } });
    const allowed = await server.fetchToken(asEditor, APP, { scopes: [READ] });
    // Allowed by the policies, but frank never connected.
    assert.equal(allowed.status, 404, allowed.text);
    assert.equal(allowed.body.error, 'not_connected');
    const asNobody = await s.token('frank', { alg: 'RS256', claims: { roles: ['intern'] } });
    const denied = await server.fetchToken(asNobody, APP, { scopes: [READ] });
    assert.equal(denied.status, 403, denied.text);
    const editors = denied.body.decision.policies.find((p) => p.id === s.editors.id);
    assert.deepEqual(editors.failedCondition.seen, ['intern']);
  });

  test('a missing or invalid inbound token is refused with 401 and a Bearer challenge', async () => {
    const none = await server.fetchToken(undefined, APP, { scopes: [READ] });
    assert.equal(none.status, 401, none.text);
    assert.equal(none.body.error, 'invalid_token');
    assert.deepEqual(none.body.details, { reason: 'missing_token' });
    assert.equal(none.headers.get('www-authenticate'), 'Bearer');

    const expired = await s.token('alice', { claims: { exp: Math.floor(Date.now() / 1000) - 600 } });
    const r = await server.fetchToken(expired, APP, { scopes: [READ] });
    assert.equal(r.status, 401, r.text);
    assert.equal(r.body.details.reason, 'expired');
    assert.match(r.headers.get('www-authenticate'), /^Bearer error="invalid_token"/);

    const noScope = await s.token('alice', { claims: { scope: 'openid' } });
    const scoped = await server.fetchToken(noScope, APP, { scopes: [READ] });
    assert.equal(scoped.status, 403, scoped.text);
    assert.equal(scoped.body.error, 'insufficient_scope');
  });

  test('an unknown app is 404 app_not_found', async () => {
    const r = await server.fetchToken(await s.token('alice'), 'no-such-app', { scopes: [READ] });
    assert.equal(r.status, 404, r.text);
    assert.equal(r.body.error, 'app_not_found');
    assert.deepEqual(r.body.details, { appId: 'no-such-app' });
  });
});
