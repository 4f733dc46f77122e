// RFC 8693 token exchange at `/oauth2/token` driven by oauth4webapi v3 (the library under
// openid-client, used directly): `genericTokenEndpointRequest` + `processGenericTokenEndpointResponse`
// with client_secret_post, the success case and the errors, as the library reports them.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import * as oauth from 'oauth4webapi';

import { ACCESS_TOKEN_TYPE, TOKEN_EXCHANGE, appResource, startWorld } from '../lib/harness.mjs';
import { APP, READ, WRITE, setupCalendar } from '../lib/scenario.mjs';

describe('token exchange with oauth4webapi', { timeout: 120_000 }, () => {
  let world;
  let server;
  let s;
  let as;
  let mcp;

  /** One exchange: the library's request, then its processing of the answer. */
  const exchange = async (subjectToken, params = {}, { secret = mcp.clientSecret, clientId = mcp.id, options } = {}) => {
    // An `undefined` parameter is left out.
    const all = { subject_token: subjectToken, subject_token_type: ACCESS_TOKEN_TYPE, resource: appResource(APP), scope: READ, ...params };
    const body = new URLSearchParams(Object.entries(all).filter(([, v]) => v !== undefined));
    const client = { client_id: clientId };
    const response = await oauth.genericTokenEndpointRequest(
      as,
      client,
      oauth.ClientSecretPost(secret),
      TOKEN_EXCHANGE,
      body,
      { [oauth.allowInsecureRequests]: true },
    );
    return oauth.processGenericTokenEndpointResponse(as, client, response, options);
  };

  /** Expects the OAuth error the library reports as a ResponseBodyError. */
  const oauthError = (status, error, check = () => {}) => (err) => {
    assert.ok(err instanceof oauth.ResponseBodyError, `a ResponseBodyError, not ${err?.name}: ${err?.message}`);
    assert.equal(err.code, oauth.RESPONSE_BODY_ERROR);
    assert.equal(err.status, status);
    assert.equal(err.error, error);
    assert.equal(typeof err.error_description, 'string');
    check(err.cause);
    return true;
  };

  before(async () => {
    world = await startWorld();
    server = world.server;
    s = await setupCalendar(world);
    mcp = await server.createClient({ id: 'mcp-webapi', name: 'MCP server (oauth4webapi)' });
    as = { issuer: server.url, token_endpoint: `${server.url}/oauth2/token` };
  });

  after(async () => {
    await world?.stop();
  });

  test('an allowed user gets the provider\'s access token', async () => {
    const result = await exchange(await s.token('alice'));
    assert.equal(result.access_token, s.providerTokens.alice);
    assert.equal(result.issued_token_type, ACCESS_TOKEN_TYPE);
    assert.equal(result.token_type, 'bearer');
    assert.equal(result.scope, READ);
    assert.ok(result.expires_in > 3500 && result.expires_in <= 3600, `expires_in ${result.expires_in}`);
    assert.equal(result.refresh_token, undefined);
    assert.equal(result.id_token, undefined);
  });

  test('a denied user: access_denied (403), the explanation in the body', async () => {
    await assert.rejects(
      exchange(await s.token('bob')),
      oauthError(403, 'access_denied', (body) => {
        assert.equal(body.reason, 'no_policy_matched');
        assert.equal(body.decision.outcome, 'deny');
        assert.deepEqual(body.decision.policies.map((p) => p.failedCondition.reason), ['notSatisfied', 'notSatisfied']);
        assert.equal(body.access_token, undefined);
      }),
    );
    await assert.rejects(
      exchange(await s.token('dave'), { scope: `${READ} ${WRITE}` }),
      oauthError(403, 'access_denied', (body) => {
        assert.equal(body.reason, 'scopes_not_allowed');
        assert.deepEqual(body.decision.deniedScopes, [WRITE]);
        assert.deepEqual(body.decision.decidingPolicies, [s.viewers.id]);
      }),
    );
  });

  test('an unconnected user: consent_required with a connect_url', async () => {
    await assert.rejects(
      exchange(await s.token('carol')),
      oauthError(400, 'consent_required', (body) => {
        assert.equal(body.reason, 'no_connection');
        assert.ok(body.connect_url.startsWith(`${server.url}/v1/outbound/connect/`), body.connect_url);
      }),
    );
  });

  test('an invalid subject token: invalid_grant, with the reason', async () => {
    const foreign = await s.token('alice', { claims: { iss: 'https://untrusted.example' } });
    await assert.rejects(
      exchange(foreign),
      oauthError(400, 'invalid_grant', (body) => assert.equal(body.reason, 'unknown_issuer')),
    );
    await assert.rejects(exchange('a.b.c'), oauthError(400, 'invalid_grant'));
  });

  test('an unknown app: invalid_target; no app at all: invalid_request', async () => {
    await assert.rejects(exchange(await s.token('alice'), { resource: appResource('nope') }), oauthError(400, 'invalid_target'));
    await assert.rejects(exchange(await s.token('alice'), { resource: undefined }), oauthError(400, 'invalid_request'));
    // Two apps at once (the same app named twice is one).
    await assert.rejects(exchange(await s.token('alice'), { audience: 'weather' }), oauthError(400, 'invalid_target'));
    assert.equal((await exchange(await s.token('alice'), { audience: APP })).access_token, s.providerTokens.alice);
  });

  test('a scope the app does not offer: invalid_scope', async () => {
    await assert.rejects(exchange(await s.token('alice'), { scope: 'calendar.admin' }), oauthError(400, 'invalid_scope'));
  });

  test('a missing subject_token: invalid_request', async () => {
    await assert.rejects(exchange(undefined), oauthError(400, 'invalid_request'));
  });

  test('a grant type other than token exchange: unsupported_grant_type', async () => {
    const client = { client_id: mcp.id };
    const response = await oauth.genericTokenEndpointRequest(
      as,
      client,
      oauth.ClientSecretPost(mcp.clientSecret),
      'urn:example:grant',
      new URLSearchParams(),
      { [oauth.allowInsecureRequests]: true },
    );
    await assert.rejects(oauth.processGenericTokenEndpointResponse(as, client, response), oauthError(400, 'unsupported_grant_type'));
  });

  test('a wrong client secret: invalid_client, behind a 401 challenge', async () => {
    const err = await exchange(await s.token('alice'), {}, { secret: 'pcs_wrong' }).then(
      () => assert.fail('a wrong secret is refused'),
      (e) => e,
    );
    assert.ok(err instanceof oauth.WWWAuthenticateChallengeError, `${err.name}: ${err.message}`);
    assert.equal(err.code, oauth.WWW_AUTHENTICATE_CHALLENGE);
    assert.equal(err.status, 401);
    assert.deepEqual(err.cause, [{ scheme: 'basic', parameters: { realm: 'portcullis' } }]);
    const body = await err.response.json();
    assert.equal(body.error, 'invalid_client');
  });

  test('an API-key credential needs its token type recognized, and then comes through', async () => {
    await server.createApp({ id: 'weather', name: 'Weather', type: 'apiKey' });
    await server.must('POST', '/v1/mgmt/outbound-apps/weather/api-keys', { apiKey: 'wk-shared' });
    const params = { resource: appResource('weather'), scope: undefined };
    // Left to itself the library refuses a token type it does not know ("N_A").
    await assert.rejects(exchange(await s.token('alice'), params), (err) => err instanceof oauth.UnsupportedOperationError);
    const result = await exchange(await s.token('alice'), params, { options: { recognizedTokenTypes: { n_a: () => {} } } });
    assert.equal(result.access_token, 'wk-shared');
    assert.equal(result.issued_token_type, 'urn:portcullis:params:oauth:token-type:api_key');
  });
});
