// RFC 8693 token exchange at `/oauth2/token` driven by openid-client v6, as an MCP server written
// with it would: a confidential client registered through the management API, the user's inbound
// token as the subject token, the outbound app as the `resource`. Every outcome is checked as the
// library surfaces it, and the wire as recorded through the library's customFetch hook.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import * as client from 'openid-client';

import { ACCESS_TOKEN_TYPE, TOKEN_EXCHANGE, appResource, startWorld } from '../lib/harness.mjs';
import { APP, READ, WRITE, setupCalendar } from '../lib/scenario.mjs';

describe('token exchange with openid-client', { timeout: 120_000 }, () => {
  let world;
  let server;
  let s;
  let registered;
  /** What went over the wire, per request: {url, headers, body, response (a clone)}. */
  let wire = [];

  /** A Configuration for `clientId` against the server (no discovery document: metadata by hand). */
  const configure = (clientId, auth) => {
    const config = new client.Configuration(
      { issuer: server.url, token_endpoint: `${server.url}/oauth2/token` },
      clientId,
      undefined,
      auth,
    );
    client.allowInsecureRequests(config);
    config[client.customFetch] = async (url, options) => {
      const response = await fetch(url, options);
      wire.push({ url, headers: options.headers, body: new URLSearchParams(options.body), response: response.clone() });
      return response;
    };
    return config;
  };

  const exchange = async (config, subjectToken, params = {}) =>
    client.genericGrantRequest(config, TOKEN_EXCHANGE, {
      ...(subjectToken === undefined ? {} : { subject_token: subjectToken }),
      subject_token_type: ACCESS_TOKEN_TYPE,
      resource: appResource(APP),
      scope: READ,
      ...params,
    });

  /** Expects an OAuth error response the library reports as a ResponseBodyError. */
  const oauthError = (status, error) => (err) => {
    assert.ok(err instanceof client.ResponseBodyError, `a ResponseBodyError, not ${err?.name}: ${err?.message}`);
    assert.equal(err.status, status);
    assert.equal(err.error, error);
    assert.equal(typeof err.error_description, 'string');
    assert.equal(err.cause.error, error);
    return true;
  };

  before(async () => {
    world = await startWorld();
    server = world.server;
    s = await setupCalendar(world);
    const r = await server.admin('POST', '/v1/mgmt/clients', { id: 'mcp-server', name: 'MCP server' });
    assert.equal(r.status, 201, r.text);
    registered = r.body;
  });

  after(async () => {
    await world?.stop();
  });

  test('registering a client shows its secret once', async () => {
    assert.equal(registered.id, 'mcp-server');
    assert.match(registered.clientSecret, /^pcs_/);
    assert.deepEqual(registered.grantTypes, [TOKEN_EXCHANGE]);
    const got = await server.admin('GET', '/v1/mgmt/clients/mcp-server');
    assert.equal(got.status, 200, got.text);
    assert.equal(got.body.clientSecret, undefined);
    assert.ok(!got.text.includes(registered.clientSecret));
    const list = await server.admin('GET', '/v1/mgmt/clients');
    assert.ok(!list.text.includes(registered.clientSecret));
  });

  test('an allowed user gets the provider\'s access token (client_secret_basic)', async () => {
    wire = [];
    const config = configure(registered.id, client.ClientSecretBasic(registered.clientSecret));
    const result = await exchange(config, await s.token('alice'));
    assert.equal(result.access_token, s.providerTokens.alice);
    assert.equal(result.issued_token_type, ACCESS_TOKEN_TYPE);
    assert.equal(result.token_type, 'bearer', 'the library lowercases token_type');
    assert.equal(result.scope, READ);
    assert.equal(typeof result.expires_in, 'number');
    assert.ok(result.expires_in > 3500 && result.expires_in <= 3600, `expires_in ${result.expires_in}`);
    assert.equal(result.refresh_token, undefined, 'the provider\'s refresh token never leaves the vault');
    // The library's helper counts down from the answer.
    assert.ok(result.expires_in - result.expiresIn() <= 1, `expiresIn() ${result.expiresIn()}`);

    assert.equal(wire.length, 1);
    const [{ headers, body, response }] = wire;
    assert.match(headers.authorization, /^Basic /);
    assert.equal(body.get('client_secret'), null);
    assert.equal(body.get('grant_type'), TOKEN_EXCHANGE);
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('cache-control'), 'no-store');
    assert.equal(response.headers.get('pragma'), 'no-cache');
    const raw = await response.json();
    assert.deepEqual(Object.keys(raw).sort(), ['access_token', 'expires_in', 'issued_token_type', 'scope', 'token_type']);
    assert.equal(raw.token_type, 'Bearer');
  });

  test('client_secret_post works the same', async () => {
    wire = [];
    const config = configure(registered.id, client.ClientSecretPost(registered.clientSecret));
    const result = await exchange(config, await s.token('dave'));
    assert.equal(result.access_token, s.providerTokens.dave);
    assert.equal(result.scope, READ);
    assert.equal(wire[0].headers.authorization, undefined);
    assert.equal(wire[0].body.get('client_id'), registered.id);
    assert.equal(wire[0].body.get('client_secret'), registered.clientSecret);
  });

  test('`audience=<appId>` names the app as well as `resource`', async () => {
    const config = configure(registered.id, client.ClientSecretBasic(registered.clientSecret));
    const result = await client.genericGrantRequest(config, TOKEN_EXCHANGE, {
      subject_token: await s.token('alice'),
      subject_token_type: ACCESS_TOKEN_TYPE,
      audience: APP,
      scope: READ,
    });
    assert.equal(result.access_token, s.providerTokens.alice);
  });

  test('the resource may also be the app\'s URL on this server', async () => {
    const config = configure(registered.id, client.ClientSecretBasic(registered.clientSecret));
    const result = await exchange(config, await s.token('alice'), { resource: `${server.url}/v1/outbound/apps/${APP}` });
    assert.equal(result.access_token, s.providerTokens.alice);
  });

  test('a denied user gets access_denied, with the decision in the body', async () => {
    const config = configure(registered.id, client.ClientSecretBasic(registered.clientSecret));
    await assert.rejects(exchange(config, await s.token('bob')), (err) => {
      oauthError(403, 'access_denied')(err);
      assert.equal(err.cause.reason, 'no_policy_matched');
      const d = err.cause.decision;
      assert.equal(d.outcome, 'deny');
      assert.deepEqual(d.deniedScopes, [READ]);
      assert.deepEqual(
        d.policies.map((p) => [p.id, p.matched, p.failedCondition?.source, p.failedCondition?.value, p.failedCondition?.seen]),
        [
          [s.editors.id, false, 'userRoles', 'editor', []],
          [s.viewers.id, false, 'userRoles', 'viewer', []],
        ],
      );
      assert.equal(err.cause.access_token, undefined);
      return true;
    });
    // A scope beyond what the matching policy allows.
    await assert.rejects(exchange(config, await s.token('dave'), { scope: `${READ} ${WRITE}` }), (err) => {
      oauthError(403, 'access_denied')(err);
      assert.equal(err.cause.reason, 'scopes_not_allowed');
      assert.deepEqual(err.cause.decision.deniedScopes, [WRITE]);
      return true;
    });
  });

  test('an unconnected user gets consent_required with a connect_url that connects her', async () => {
    const config = configure(registered.id, client.ClientSecretBasic(registered.clientSecret));
    const erin = await s.token('erin');
    let connectUrl;
    await assert.rejects(exchange(config, erin), (err) => {
      oauthError(400, 'consent_required')(err);
      assert.equal(err.cause.reason, 'no_connection');
      assert.deepEqual(err.cause.missing_scopes, [READ]);
      connectUrl = err.cause.connect_url;
      assert.ok(connectUrl.startsWith(`${server.url}/v1/outbound/connect/`), connectUrl);
      return true;
    });
    const consent = await server.consent(connectUrl);
    assert.equal(consent.status, 200, consent.page);
    const result = await exchange(config, erin);
    assert.equal(result.issued_token_type, ACCESS_TOKEN_TYPE);
    assert.equal(result.scope, READ);
  });

  test('each exchange is in the audit log, with the client that asked', async () => {
    const config = configure(registered.id, client.ClientSecretBasic(registered.clientSecret));
    await assert.rejects(exchange(config, await s.token('bob'), { scope: WRITE }), (err) => err.error === 'access_denied');
    // The audit log is written off the hot path: wait for the record.
    let events = [];
    for (let i = 0; i < 100 && !events.some((e) => e.requestedScopes?.includes(WRITE)); i += 1) {
      const r = await server.must('GET', `/v1/mgmt/audit?clientId=${registered.id}&userId=bob`);
      events = r.items;
      await new Promise((res) => setTimeout(res, 50));
    }
    const event = events.find((e) => e.requestedScopes?.includes(WRITE));
    assert.ok(event, `an audit record of bob's exchange: ${JSON.stringify(events)}`);
    assert.equal(event.action, 'token_exchange');
    assert.equal(event.clientId, registered.id);
    assert.equal(event.appId, APP);
    assert.equal(event.outcome, 'denied');
    assert.equal(event.reason, 'no_policy_matched');
    assert.equal(event.issuer, world.idp.issuer);
    assert.deepEqual(event.grantedScopes, []);
  });

  test('a wrong client secret is invalid_client (401)', async () => {
    for (const auth of [client.ClientSecretBasic('pcs_wrong'), client.ClientSecretPost('pcs_wrong')]) {
      const config = configure(registered.id, auth);
      // A 401 carries a WWW-Authenticate challenge (RFC 6749 §5.2), which the library reports as
      // such, leaving the OAuth error body in the response.
      const err = await exchange(config, await s.token('alice')).then(
        () => assert.fail('a wrong secret is refused'),
        (e) => e,
      );
      assert.ok(err instanceof client.WWWAuthenticateChallengeError, `${err.name}: ${err.message}`);
      assert.equal(err.status, 401);
      assert.equal(err.cause[0].scheme, 'basic');
      const body = await err.response.json();
      assert.equal(body.error, 'invalid_client');
      assert.ok(!JSON.stringify(body).includes(s.providerTokens.alice));
    }
    // An unknown client is refused the same way.
    const unknown = configure('no-such-client', client.ClientSecretBasic(registered.clientSecret));
    await assert.rejects(exchange(unknown, await s.token('alice')), (err) => {
      assert.ok(err instanceof client.WWWAuthenticateChallengeError);
      assert.equal(err.status, 401);
      return true;
    });
  });

  test('an invalid subject token is invalid_grant', async () => {
    const config = configure(registered.id, client.ClientSecretBasic(registered.clientSecret));
    await assert.rejects(exchange(config, 'not-a-jwt'), oauthError(400, 'invalid_grant'));
    const expired = await s.token('alice', { claims: { exp: Math.floor(Date.now() / 1000) - 600 } });
    await assert.rejects(exchange(config, expired), (err) => {
      oauthError(400, 'invalid_grant')(err);
      assert.equal(err.cause.reason, 'expired');
      return true;
    });
    const otherAudience = await s.token('alice', { claims: { aud: 'https://elsewhere.example/mcp' } });
    await assert.rejects(exchange(config, otherAudience), oauthError(400, 'invalid_grant'));
    // Without the fetch scope.
    const noScope = await s.token('alice', { claims: { scope: 'openid' } });
    await assert.rejects(exchange(config, noScope), oauthError(400, 'invalid_grant'));
  });

  test('an unknown app is invalid_target', async () => {
    const config = configure(registered.id, client.ClientSecretBasic(registered.clientSecret));
    await assert.rejects(
      exchange(config, await s.token('alice'), { resource: appResource('no-such-app') }),
      oauthError(400, 'invalid_target'),
    );
    await assert.rejects(
      exchange(config, await s.token('alice'), { resource: 'https://api.example.com/' }),
      oauthError(400, 'invalid_target'),
    );
  });

  test('a missing subject_token is invalid_request', async () => {
    const config = configure(registered.id, client.ClientSecretBasic(registered.clientSecret));
    await assert.rejects(exchange(config, undefined), (err) => {
      oauthError(400, 'invalid_request')(err);
      assert.match(err.error_description, /subject_token/);
      return true;
    });
    await assert.rejects(
      exchange(config, await s.token('alice'), { subject_token_type: 'urn:ietf:params:oauth:token-type:saml2' }),
      oauthError(400, 'invalid_request'),
    );
  });

  test('a client restricted to other apps gets invalid_target', async () => {
    const other = await server.createClient({ id: 'other-server', name: 'Other', allowedApps: ['mail'] });
    const config = configure(other.id, client.ClientSecretBasic(other.clientSecret));
    await assert.rejects(exchange(config, await s.token('alice')), oauthError(400, 'invalid_target'));
  });

  test('an API-key app hands out the key with the N_A token type the library recognizes', async () => {
    await server.createApp({ id: 'weather', name: 'Weather', type: 'apiKey' });
    await server.must('POST', '/v1/mgmt/outbound-apps/weather/api-keys', { apiKey: 'wk-alice-123', userId: 'alice' });
    const config = configure(registered.id, client.ClientSecretBasic(registered.clientSecret));
    const result = await client.genericGrantRequest(config, TOKEN_EXCHANGE, {
      subject_token: await s.token('alice'),
      subject_token_type: ACCESS_TOKEN_TYPE,
      resource: appResource('weather'),
    });
    assert.equal(result.access_token, 'wk-alice-123');
    assert.equal(result.issued_token_type, 'urn:portcullis:params:oauth:token-type:api_key');
    assert.equal(result.token_type, 'n_a');
    assert.equal(result.expires_in, undefined);
    // Bob has no key of his own (and there is no app-wide key).
    await assert.rejects(
      client.genericGrantRequest(config, TOKEN_EXCHANGE, {
        subject_token: await s.token('bob'),
        subject_token_type: ACCESS_TOKEN_TYPE,
        resource: appResource('weather'),
      }),
      (err) => {
        oauthError(400, 'consent_required')(err);
        assert.equal(err.cause.connect_url, undefined, 'no connect URL: an admin provisions keys');
        return true;
      },
    );
  });

  test('a client registered after a failed attempt with its id works at once', async () => {
    // The failed attempt makes the server look the id up (and remember it is unknown).
    const early = configure('late-client', client.ClientSecretBasic('pcs_guess'));
    await assert.rejects(exchange(early, await s.token('alice')), (err) => err.status === 401);
    const c = await server.createClient({ id: 'late-client', name: 'Late' });
    const config = configure(c.id, client.ClientSecretBasic(c.clientSecret));
    assert.equal((await exchange(config, await s.token('alice'))).access_token, s.providerTokens.alice);
  });

  test('a rotated secret works at once and the old one stops working', async () => {
    const c = await server.createClient({ id: 'rotating', name: 'Rotating' });
    const old = configure(c.id, client.ClientSecretBasic(c.clientSecret));
    assert.equal((await exchange(old, await s.token('alice'))).access_token, s.providerTokens.alice);
    const rotated = await server.must('POST', `/v1/mgmt/clients/${c.id}/secret`);
    assert.notEqual(rotated.clientSecret, c.clientSecret);
    await assert.rejects(exchange(old, await s.token('alice')), (err) => err.status === 401);
    const fresh = configure(c.id, client.ClientSecretBasic(rotated.clientSecret));
    assert.equal((await exchange(fresh, await s.token('alice'))).access_token, s.providerTokens.alice);
  });
});
