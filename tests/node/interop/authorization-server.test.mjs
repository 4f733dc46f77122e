// Portcullis as the MCP servers' authorization server, driven by real clients: oauth4webapi
// (RFC 8414 discovery, authorization request with PKCE S256 and RFC 8707 resource, RFC 9207
// `iss` validation, code exchange, refresh with rotation and reuse detection, introspection,
// revocation, RFC 9068 access-token validation, registration by client ID metadata document and
// by DCR), openid-client (the same flow through its Configuration, and OpenID Connect: discovery
// and the ID token it validates), and jose (the access and ID tokens verified with the published
// JWK set, their issuer, audience and `typ`). The sign-in and consent pages are answered through
// their real forms.

import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';

import * as jose from 'jose';
import * as oauth from 'oauth4webapi';
import * as client from 'openid-client';

import { Portcullis, call } from '../lib/harness.mjs';

const RESOURCE = 'http://127.0.0.1:9/mcp';
const REDIRECT = 'http://127.0.0.1:4242/callback';
const PASSWORD = 'correct horse battery';

/** A browser: cookies by name, no automatic redirects. */
class Browser {
  cookies = new Map();

  async go(url, form) {
    const headers = { cookie: [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ') };
    const init = { headers, redirect: 'manual' };
    if (form) {
      init.method = 'POST';
      init.body = new URLSearchParams(form);
    }
    const resp = await fetch(url, init);
    for (const set of resp.headers.getSetCookie()) {
      const [pair] = set.split(';');
      const i = pair.indexOf('=');
      this.cookies.set(pair.slice(0, i), pair.slice(i + 1));
    }
    return { status: resp.status, location: resp.headers.get('location'), html: await resp.text() };
  }
}

/** A hidden field of a page. */
const field = (html, name) => {
  const m = html.match(new RegExp(`name="${name}" value="([^"]*)"`));
  assert.ok(m, `no field ${name} on the page: ${html}`);
  return m[1].replaceAll('&amp;', '&');
};

/** Signs in (when asked) and allows (when asked); resolves to the redirect back to the client. */
async function authorizeInBrowser(browser, server, url) {
  let page = await browser.go(url);
  if (page.status === 200 && page.html.includes('Sign in')) {
    page = await browser.go(`${server.url}/oauth2/authorize`, {
      request: field(page.html, 'request'),
      csrf: field(page.html, 'csrf'),
      action: 'sign_in',
      login: 'ada@example.com',
      password: PASSWORD,
    });
  }
  if (page.status === 200 && page.html.includes('Allow access?')) {
    assert.match(page.html, /Notes MCP/);
    page = await browser.go(`${server.url}/oauth2/authorize`, {
      request: field(page.html, 'request'),
      csrf: field(page.html, 'csrf'),
      action: 'allow',
      remember: '1',
    });
  }
  assert.equal(page.status, 303, page.html);
  return new URL(page.location);
}

describe('Portcullis as an authorization server, with real clients', { timeout: 120_000 }, () => {
  let server;
  let as;
  let gatewaySecret;
  let documents;
  let documentUrl;
  const app = { client_id: 'notes-app' };
  const options = { [oauth.allowInsecureRequests]: true };

  before(async () => {
    // A client ID metadata document, served on loopback: the tests' danger_ switch lets
    // Portcullis fetch it there (production refuses private addresses and plain http).
    documents = http.createServer((req, res) => {
      if (req.url !== '/notes-client.json') return res.writeHead(404).end();
      res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'max-age=60' });
      res.end(JSON.stringify({
        client_id: documentUrl,
        client_name: 'Notes by document',
        redirect_uris: ['http://127.0.0.1/callback'],
        grant_types: ['authorization_code', 'refresh_token'],
        token_endpoint_auth_method: 'none',
      }));
    });
    await new Promise((r) => documents.listen(0, '127.0.0.1', r));
    documentUrl = `http://127.0.0.1:${documents.address().port}/notes-client.json`;
    server = await Portcullis.start({ env: { PORTCULLIS_DANGER_ALLOW_PRIVATE_CLIENT_METADATA: 'true' } });
    await server.must('POST', '/v1/mgmt/resources', {
      id: 'notes',
      uri: RESOURCE,
      name: 'Notes MCP',
      scopes: [{ name: 'notes.read', description: 'Read your notes' }],
    });
    await server.createRole('writer');
    await server.createUser({ id: 'ada', email: 'ada@example.com', roles: ['writer'] });
    const set = await server.admin('PUT', '/v1/mgmt/users/ada/password', { password: PASSWORD });
    assert.equal(set.status, 204, set.text);
    await server.createClient({
      id: 'notes-app',
      name: 'Notes app',
      redirectUris: ['http://127.0.0.1/callback'],
      tokenEndpointAuthMethod: 'none',
    });
    const gateway = await server.createClient({ id: 'gateway', name: 'Gateway', grantTypes: ['client_credentials'] });
    gatewaySecret = gateway.clientSecret;
    const discovered = await oauth.discoveryRequest(new URL(server.url), { algorithm: 'oauth2', ...options });
    as = await oauth.processDiscoveryResponse(new URL(server.url), discovered);
  });

  after(async () => {
    documents?.close();
    await server?.stop();
  });

  /** The whole code flow with oauth4webapi; resolves to the token response. */
  async function codeFlow(browser, app = { client_id: 'notes-app' }) {
    const verifier = oauth.generateRandomCodeVerifier();
    const state = oauth.generateRandomState();
    const url = new URL(as.authorization_endpoint);
    url.searchParams.set('response_type', 'code');
    url.searchParams.set('client_id', app.client_id);
    url.searchParams.set('redirect_uri', REDIRECT);
    url.searchParams.set('scope', 'notes.read outbound.token.fetch');
    url.searchParams.set('state', state);
    url.searchParams.set('code_challenge', await oauth.calculatePKCECodeChallenge(verifier));
    url.searchParams.set('code_challenge_method', 'S256');
    url.searchParams.set('resource', RESOURCE);
    const back = await authorizeInBrowser(browser, server, url.href);
    // The library checks `iss` (RFC 9207) and `state`.
    const params = oauth.validateAuthResponse(as, app, back, state);
    // A forged state is caught by the client.
    assert.throws(() => oauth.validateAuthResponse(as, app, back, oauth.generateRandomState()));
    const response = await oauth.authorizationCodeGrantRequest(as, app, oauth.None(), params, REDIRECT, verifier, {
      additionalParameters: { resource: RESOURCE },
      ...options,
    });
    return oauth.processAuthorizationCodeResponse(as, app, response);
  }

  test('discovery advertises the code flow, PKCE S256 and the endpoints', () => {
    assert.equal(as.issuer, server.url);
    assert.deepEqual(as.code_challenge_methods_supported, ['S256']);
    assert.deepEqual(as.response_types_supported, ['code']);
    assert.equal(as.authorization_response_iss_parameter_supported, true);
    for (const g of ['authorization_code', 'refresh_token', 'client_credentials']) {
      assert.ok(as.grant_types_supported.includes(g), g);
    }
  });

  test('oauth4webapi: code + PKCE, the access token verified by jose and by the library', async () => {
    const browser = new Browser();
    const tokens = await codeFlow(browser);
    assert.equal(tokens.token_type, 'bearer');
    assert.equal(tokens.scope, 'notes.read outbound.token.fetch');
    assert.ok(tokens.refresh_token);

    const jwks = jose.createRemoteJWKSet(new URL(as.jwks_uri));
    const { payload, protectedHeader } = await jose.jwtVerify(tokens.access_token, jwks, {
      issuer: as.issuer,
      audience: RESOURCE,
      typ: 'at+jwt',
      algorithms: ['ES256'],
    });
    assert.equal(payload.sub, 'ada');
    assert.equal(payload.client_id, 'notes-app');
    assert.deepEqual(payload.roles, ['writer']);
    assert.equal(protectedHeader.alg, 'ES256');
    // A verifier expecting another audience refuses it.
    await assert.rejects(jose.jwtVerify(tokens.access_token, jwks, { issuer: as.issuer, audience: 'https://other.example/mcp' }));

    // RFC 9068 validation as a resource server would do it.
    const request = new Request(RESOURCE, { headers: { authorization: `Bearer ${tokens.access_token}` } });
    const claims = await oauth.validateJwtAccessToken(as, request, RESOURCE, options);
    assert.equal(claims.sub, 'ada');

    // The access control plane accepts it as an inbound token: the app is unknown, not the token.
    const fetched = await server.fetchToken(tokens.access_token, 'nope');
    assert.equal(fetched.status, 404, fetched.text);
  });

  test('oauth4webapi: refresh rotates, a replay revokes the family; introspection and revocation', async () => {
    const browser = new Browser();
    const first = await codeFlow(browser);
    const refresh = async (rt) => {
      const r = await oauth.refreshTokenGrantRequest(as, app, oauth.None(), rt, options);
      return oauth.processRefreshTokenResponse(as, app, r);
    };
    const second = await refresh(first.refresh_token);
    assert.notEqual(second.refresh_token, first.refresh_token);
    await assert.rejects(refresh(first.refresh_token), (err) => {
      assert.ok(err instanceof oauth.ResponseBodyError, String(err));
      assert.equal(err.error, 'invalid_grant');
      return true;
    });
    await assert.rejects(refresh(second.refresh_token), (err) => err.error === 'invalid_grant');

    // Introspection by a confidential client.
    const gateway = { client_id: 'gateway' };
    const introspect = async (token) => {
      const r = await oauth.introspectionRequest(as, gateway, oauth.ClientSecretBasic(gatewaySecret), token, options);
      return oauth.processIntrospectionResponse(as, gateway, r);
    };
    const third = await codeFlow(browser);
    const active = await introspect(third.access_token);
    assert.equal(active.active, true);
    assert.equal(active.sub, 'ada');
    assert.equal(active.client_id, 'notes-app');
    assert.equal((await introspect(third.refresh_token)).active, true);
    assert.equal((await introspect(second.refresh_token)).active, false);

    // Revocation (RFC 7009) by the public client itself.
    const revoked = await oauth.revocationRequest(as, app, oauth.None(), third.refresh_token, options);
    await oauth.processRevocationResponse(revoked);
    assert.equal((await introspect(third.refresh_token)).active, false);
    await assert.rejects(refresh(third.refresh_token), (err) => err.error === 'invalid_grant');
  });

  test('oauth4webapi: client credentials for a confidential client', async () => {
    const gateway = { client_id: 'gateway' };
    const r = await oauth.clientCredentialsGrantRequest(
      as,
      gateway,
      oauth.ClientSecretBasic(gatewaySecret),
      new URLSearchParams({ resource: RESOURCE }),
      options,
    );
    const tokens = await oauth.processClientCredentialsResponse(as, gateway, r);
    assert.equal(tokens.scope, 'notes.read');
    const jwks = jose.createRemoteJWKSet(new URL(as.jwks_uri));
    const { payload } = await jose.jwtVerify(tokens.access_token, jwks, { issuer: as.issuer, audience: RESOURCE });
    assert.equal(payload.sub, 'gateway');
  });

  test('openid-client: the code flow, a refresh and a revocation through its Configuration', async () => {
    const config = await client.discovery(new URL(server.url), 'notes-app', undefined, client.None(), {
      algorithm: 'oauth2',
      execute: [client.allowInsecureRequests],
    });
    const verifier = client.randomPKCECodeVerifier();
    const state = client.randomState();
    const url = client.buildAuthorizationUrl(config, {
      redirect_uri: REDIRECT,
      scope: 'notes.read',
      code_challenge: await client.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      state,
      resource: RESOURCE,
    });
    const back = await authorizeInBrowser(new Browser(), server, url.href);
    const tokens = await client.authorizationCodeGrant(config, back, {
      pkceCodeVerifier: verifier,
      expectedState: state,
    });
    assert.equal(tokens.scope, 'notes.read');
    const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token);
    assert.ok(refreshed.access_token);
    await client.tokenRevocation(config, refreshed.refresh_token);
    await assert.rejects(client.refreshTokenGrant(config, refreshed.refresh_token));
    // A code the library presents twice is refused.
    await assert.rejects(client.authorizationCodeGrant(config, back, { pkceCodeVerifier: verifier, expectedState: state }));
  });

  test('openid-client: OpenID Connect discovery, and an ID token it validates (nonce, at_hash, signature)', async () => {
    // The library's default: OpenID Connect Discovery 1.0 (/.well-known/openid-configuration).
    const config = await client.discovery(new URL(server.url), 'notes-app', undefined, client.None(), {
      execute: [client.allowInsecureRequests],
    });
    assert.deepEqual(config.serverMetadata().id_token_signing_alg_values_supported, ['ES256']);
    const verifier = client.randomPKCECodeVerifier();
    const state = client.randomState();
    const nonce = client.randomNonce();
    const url = client.buildAuthorizationUrl(config, {
      redirect_uri: REDIRECT,
      scope: 'openid email notes.read',
      code_challenge: await client.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      state,
      nonce,
      resource: RESOURCE,
    });
    const back = await authorizeInBrowser(new Browser(), server, url.href);
    const tokens = await client.authorizationCodeGrant(config, back, {
      pkceCodeVerifier: verifier,
      expectedState: state,
      expectedNonce: nonce,
      idTokenExpected: true,
    });
    const claims = tokens.claims();
    assert.equal(claims.sub, 'ada');
    assert.equal(claims.aud, 'notes-app');
    assert.equal(claims.nonce, nonce);
    assert.equal(claims.email, 'ada@example.com');
    // Verified once more with jose against the published keys.
    const jwks = jose.createRemoteJWKSet(new URL(`${server.url}/.well-known/jwks.json`));
    const { protectedHeader } = await jose.jwtVerify(tokens.id_token, jwks, {
      issuer: server.url,
      audience: 'notes-app',
    });
    assert.equal(protectedHeader.alg, 'ES256');
    // A wrong expected nonce is caught by the library.
    const other = client.buildAuthorizationUrl(config, {
      redirect_uri: REDIRECT,
      scope: 'openid notes.read',
      code_challenge: await client.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      state,
      nonce: client.randomNonce(),
      resource: RESOURCE,
    });
    const back2 = await authorizeInBrowser(new Browser(), server, other.href);
    await assert.rejects(
      client.authorizationCodeGrant(config, back2, { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce }),
    );
  });

  test('oauth4webapi: a client named by its metadata document URL, then the code flow', async () => {
    assert.equal(as.client_id_metadata_document_supported, true);
    const tokens = await codeFlow(new Browser(), { client_id: documentUrl });
    const { payload } = await jose.jwtVerify(
      tokens.access_token,
      jose.createRemoteJWKSet(new URL(as.jwks_uri)),
      { issuer: server.url, audience: RESOURCE, typ: 'at+jwt' },
    );
    assert.equal(payload.client_id, documentUrl);
    assert.equal(payload.sub, 'ada');
  });

  test('oauth4webapi: dynamic client registration (RFC 7591), then the code flow', async () => {
    assert.equal(as.registration_endpoint, `${server.url}/oauth2/register`);
    const response = await oauth.dynamicClientRegistrationRequest(
      as,
      {
        redirect_uris: ['http://127.0.0.1/callback'],
        client_name: 'Registered agent',
        application_type: 'native',
        grant_types: ['authorization_code', 'refresh_token'],
        token_endpoint_auth_method: 'none',
      },
      options,
    );
    const registered = await oauth.processDynamicClientRegistrationResponse(response);
    assert.match(registered.client_id, /^dyn_/);
    assert.equal(registered.token_endpoint_auth_method, 'none');
    const tokens = await codeFlow(new Browser(), { client_id: registered.client_id });
    assert.ok(tokens.refresh_token);
    const { payload } = await jose.jwtVerify(tokens.access_token, jose.createRemoteJWKSet(new URL(as.jwks_uri)), {
      issuer: as.issuer,
      audience: RESOURCE,
    });
    assert.equal(payload.client_id, registered.client_id);

    // Metadata the server cannot accept is refused, as the library reports it.
    const refused = await oauth.dynamicClientRegistrationRequest(
      as,
      { redirect_uris: ['https://agent.example/cb'], application_type: 'native' },
      options,
    );
    await assert.rejects(oauth.processDynamicClientRegistrationResponse(refused), (err) => {
      assert.equal(err.error, 'invalid_redirect_uri');
      return true;
    });
  });

  test('a prefix-matched redirect URI is shown an error, never redirected to', async () => {
    const url = new URL(as.authorization_endpoint);
    for (const [k, v] of Object.entries({
      response_type: 'code',
      client_id: 'notes-app',
      redirect_uri: 'http://127.0.0.1/callback/../evil',
      code_challenge: await oauth.calculatePKCECodeChallenge(oauth.generateRandomCodeVerifier()),
      code_challenge_method: 'S256',
      resource: RESOURCE,
    })) {
      url.searchParams.set(k, v);
    }
    const r = await call(url.href);
    assert.equal(r.status, 400);
    assert.equal(r.headers.get('location'), null);
  });
});
