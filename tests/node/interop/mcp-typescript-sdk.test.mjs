// `portcullis demo` driven by the official MCP TypeScript SDK client (@modelcontextprotocol/client
// v2, protocol revision 2026-07-28), as an MCP host would use it: its StreamableHTTPClientTransport
// with an OAuthClientProvider of ours whose `redirectToAuthorization` plays the user's browser
// (single sign-on through the demo's identity provider, the consent page), everything else left
// to the SDK. It shows that the SDK, on its own, finds the authorization server from the MCP
// server's 401 (RFC 9728, then RFC 8414), identifies itself by a client ID metadata document or
// registers (RFC 7591), runs the code flow with PKCE S256 and the RFC 8707 `resource`, and steps
// up on a 403 insufficient_scope; and that what the tools answer (the connect links as a URL
// elicitation or as text, the policies' denials) reaches the SDK's caller as it should.
//
// The demo's users get their roles from single sign-on: vera is a Viewer, eddie an Editor. A user
// signed in with a password only has no roles, so every sign-in here goes through SSO.
//
// The SDK accepts only an `https` client ID metadata URL, so the document is served over TLS on
// loopback with a certificate made for the run (the `openssl` command line), which the demo trusts
// through SSL_CERT_FILE; PORTCULLIS_DANGER_ALLOW_PRIVATE_CLIENT_METADATA lets it fetch from
// loopback at all.

import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { after, before, describe, test } from 'node:test';

import {
  Client,
  StreamableHTTPClientTransport,
  UnauthorizedError,
  UrlElicitationRequiredError,
  auth,
} from '@modelcontextprotocol/client';
import * as jose from 'jose';

import { portcullisBin } from '../lib/harness.mjs';

/** The client's redirect URI: a loopback URI nothing listens on (the test reads `Location`). */
const REDIRECT = 'http://127.0.0.1:4242/callback';
/** What a client asks for in the normal case: every scope the MCP server advertises. */
const ALL_SCOPES = ['calendar.read', 'calendar.write', 'crm.read', 'outbound.token.fetch'];
/** A token good for reading only (the step-up's starting point). */
const READ_SCOPES = ['calendar.read', 'crm.read', 'outbound.token.fetch'];
/** The revision the SDK is pinned to (no fallback to the 2025 `initialize` handshake). */
const REVISION = '2026-07-28';

// ----- Child processes (as lib/harness.mjs does: killed should the test process die first) -----

const children = new Set();
process.on('exit', () => {
  for (const c of children) {
    if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  }
});

/** The running demo: what it printed when ready, its process and its last log lines. */
async function startDemo({ env = {}, readyTimeoutMs = 30_000 } = {}) {
  // The caller's own PORTCULLIS_* settings must not leak in.
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('PORTCULLIS_')));
  if (process.env.PORTCULLIS_TEST_LOG_LEVEL) base.PORTCULLIS_LOG_LEVEL = process.env.PORTCULLIS_TEST_LOG_LEVEL;
  const child = spawn(
    portcullisBin(),
    ['demo', '--listen', '127.0.0.1:0', '--mcp-listen', '127.0.0.1:0', '--no-story', '--output', 'json'],
    { env: { ...base, ...env }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  children.add(child);
  child.once('exit', () => children.delete(child));
  const logs = [];
  readline.createInterface({ input: child.stderr }).on('line', (l) => {
    logs.push(l);
    if (logs.length > 400) logs.shift();
  });
  const stdout = readline.createInterface({ input: child.stdout });
  let timer;
  try {
    const line = await Promise.race([
      once(stdout, 'line').then(([l]) => l),
      once(child, 'exit').then(([code, sig]) => {
        throw new Error(`portcullis demo exited (${code ?? sig}) before it was ready:\n${logs.join('\n')}`);
      }),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`portcullis demo was not ready within ${readyTimeoutMs} ms:\n${logs.join('\n')}`)), readyTimeoutMs);
      }),
    ]);
    return { ...JSON.parse(line), child, logs };
  } catch (e) {
    child.kill('SIGKILL');
    throw e;
  } finally {
    clearTimeout(timer);
  }
}

/** Stops the demo with SIGTERM (SIGKILL after 10 s); its exit code, or the signal. */
async function stopDemo(demo) {
  const { child } = demo;
  if (child.exitCode !== null || child.signalCode !== null) return child.exitCode ?? child.signalCode;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  const [code, sig] = await exited;
  clearTimeout(timer);
  return code ?? sig;
}

// ----- The user's browser ----------------------------------------------------------------------

/** A browser: cookies by name (every host is 127.0.0.1), no automatic redirects. */
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
    return { url, status: resp.status, location: resp.headers.get('location'), html: await resp.text() };
  }
}

/** What a page of Portcullis says went wrong (its alert), else the page. */
const alert = (page) => {
  const m = page.html.match(/role="alert"[^>]*>([^<]*)</);
  return m ? m[1].replaceAll('&#39;', "'").replaceAll('&quot;', '"').replaceAll('&amp;', '&') : page.html;
};

/** A hidden field of a page. */
const field = (page, name) => {
  const m = page.html.match(new RegExp(`name="${name}" value="([^"]*)"`));
  assert.ok(m, `no field ${name} on the page at ${page.url} (${page.status}): ${page.html}`);
  return m[1].replaceAll('&amp;', '&');
};

/**
 * Plays the user through Portcullis's authorization endpoint: single sign-on at the demo's
 * identity provider as `person` (when not signed in yet), the consent page (when asked). Returns
 * the redirect back to the client.
 */
async function authorizeInBrowser(browser, demo, person, authorizationUrl) {
  let page = await browser.go(authorizationUrl);
  if (page.status === 200 && page.html.includes('action="/oauth2/sso/start"')) {
    // "Sign in with Entra ID (demo)": to the identity provider, which shows one button per person.
    const start = await browser.go(`${demo.portcullis}/oauth2/sso/start`, {
      request: field(page, 'request'),
      csrf: field(page, 'csrf'),
      connection: demo.ssoConnection,
    });
    assert.equal(start.status, 303, start.html);
    assert.ok(start.location.startsWith(`${demo.identityProvider}/authorize?`), start.location);
    const idp = await browser.go(start.location);
    assert.equal(idp.status, 200, idp.html);
    const back = await browser.go(`${demo.identityProvider}/authorize/as`, { flow: field(idp, 'flow'), person });
    assert.equal(back.status, 303, back.html);
    assert.ok(back.location.startsWith(`${demo.portcullis}/oauth2/sso/callback?`), back.location);
    page = await browser.go(back.location);
  }
  if (page.status === 200 && page.html.includes('Allow access?')) {
    page = await browser.go(`${demo.portcullis}/oauth2/authorize`, {
      request: field(page, 'request'),
      csrf: field(page, 'csrf'),
      action: 'allow',
    });
  }
  assert.equal(page.status, 303, `the authorization ends in a redirect to the client, not ${page.status} at ${page.url}: ${alert(page)}`);
  assert.ok(page.location.startsWith(`${REDIRECT}?`), page.location);
  const back = new URL(page.location);
  // An error redirect (RFC 6749 §4.1.2.1) is not a code.
  assert.equal(back.searchParams.get('error'), null, `the authorization failed: ${page.location}`);
  return back;
}

/**
 * Opens a connect link in the browser signed in to Portcullis (its session says who connects):
 * the link's page, "Continue", the calendar provider (which redirects back at once), Portcullis's
 * callback, which says "Connected".
 */
async function connectInBrowser(browser, demo, link) {
  assert.ok(link.startsWith(`${demo.portcullis}/v1/outbound/connect/`), `a connect link of Portcullis: ${link}`);
  const page = await browser.go(link);
  assert.equal(page.status, 200, page.html);
  const go = await browser.go(link, { action: 'continue', csrf: field(page, 'csrf') });
  assert.equal(go.status, 303, go.html);
  const provider = await browser.go(go.location);
  assert.ok([302, 303].includes(provider.status), `the provider redirects back (${provider.status}): ${provider.html}`);
  assert.ok(provider.location.startsWith(`${demo.portcullis}/`), provider.location);
  const done = await browser.go(provider.location);
  assert.equal(done.status, 200, `Portcullis's callback shows the outcome: ${done.html}`);
  assert.match(done.html, /<h1>Connected<\/h1>/, done.html);
  return done;
}

// ----- The SDK's side --------------------------------------------------------------------------

/**
 * The OAuthClientProvider of an MCP host, kept in memory. With `clientMetadataUrl` the SDK uses
 * it as the client_id (the authorization server supporting metadata documents); without, it
 * registers. `authorizations` records every URL the SDK sent the user to, `callback` the last
 * redirect back.
 */
class HostProvider {
  constructor({ browser, demo, person, clientMetadataUrl }) {
    this.browser = browser;
    this.demo = demo;
    this.person = person;
    if (clientMetadataUrl) this.clientMetadataUrl = clientMetadataUrl;
    this.saved = {};
    this.authorizations = [];
    this.callback = undefined;
  }

  get redirectUrl() {
    return REDIRECT;
  }

  get clientMetadata() {
    return {
      client_name: `MCP SDK host (${this.person})`,
      redirect_uris: [REDIRECT],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    };
  }

  state() {
    this.saved.state = crypto.randomUUID();
    return this.saved.state;
  }

  clientInformation() {
    return this.saved.client;
  }

  saveClientInformation(client) {
    this.saved.client = client;
  }

  tokens() {
    return this.saved.tokens;
  }

  saveTokens(tokens) {
    this.saved.tokens = tokens;
  }

  saveCodeVerifier(verifier) {
    this.saved.verifier = verifier;
  }

  codeVerifier() {
    return this.saved.verifier;
  }

  saveDiscoveryState(state) {
    this.saved.discovery = state;
  }

  discoveryState() {
    return this.saved.discovery;
  }

  /** The browser does the whole round trip at once; the host then hands the code to the SDK. */
  async redirectToAuthorization(url) {
    this.authorizations.push(url);
    this.callback = await authorizeInBrowser(this.browser, this.demo, this.person, url.href);
    // The host checks `state` (the SDK leaves that to it); the SDK checks `iss` in finishAuth.
    assert.equal(this.callback.searchParams.get('state'), this.saved.state);
  }
}

/** A fetch that records every request the SDK makes and its answer (bodies kept as text). */
function recordingFetch(wire) {
  return async (input, init = {}) => {
    const body = init.body === undefined || init.body === null ? '' : String(init.body);
    const response = await fetch(input, init);
    wire.push({
      method: init.method ?? 'GET',
      url: String(input),
      body,
      status: response.status,
      wwwAuthenticate: response.headers.get('www-authenticate'),
    });
    return response;
  };
}

/** An SDK client pinned to the 2026-07-28 revision; `urlElicitation` declares the capability. */
const newClient = (urlElicitation) =>
  new Client(
    { name: 'portcullis-interop', version: '1.0.0' },
    {
      capabilities: urlElicitation ? { elicitation: { url: {} } } : {},
      versionNegotiation: { mode: { pin: REVISION } },
    },
  );

/** The text of a tool result. */
const text = (result) => result.content.filter((c) => c.type === 'text').map((c) => c.text).join('\n');

/** The scopes of a space-separated `scope`, sorted. */
const scopes = (s) => (s ?? '').split(' ').filter(Boolean).sort();

describe('the MCP TypeScript SDK client against portcullis demo', { timeout: 120_000 }, () => {
  let demo;
  let tmp;
  let documents;
  let documentUrl;
  const documentFetches = [];
  let as;
  let jwks;
  /** vera's host: a client named by its metadata document, declaring URL elicitation. */
  const vera = {};
  /** eddie's host: a registered client without URL elicitation, first with a read-only token. */
  const eddie = {};

  before(async () => {
    // A certificate for 127.0.0.1, for the client ID metadata document's https server. Not a CA
    // (rustls refuses a CA certificate as a server's); the demo trusts it as its only root.
    tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'portcullis-mcp-sdk-'));
    const key = path.join(tmp, 'key.pem');
    const cert = path.join(tmp, 'cert.pem');
    try {
      execFileSync('openssl', [
        'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
        '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1',
        '-addext', 'subjectAltName=IP:127.0.0.1', '-addext', 'basicConstraints=critical,CA:FALSE',
      ], { stdio: ['ignore', 'ignore', 'pipe'] });
    } catch (e) {
      throw new Error(`cannot make a certificate with the openssl command line (needed for the https metadata document): ${e.stderr ?? e.message}`);
    }
    documents = https.createServer({ key: fs.readFileSync(key), cert: fs.readFileSync(cert) }, (req, res) => {
      if (req.url !== '/mcp-sdk-host.json') return res.writeHead(404).end();
      documentFetches.push({ userAgent: req.headers['user-agent'] });
      res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'max-age=60' });
      res.end(JSON.stringify({
        client_id: documentUrl,
        client_name: 'MCP SDK host (by document)',
        redirect_uris: [REDIRECT],
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        token_endpoint_auth_method: 'none',
      }));
    });
    documents.listen(0, '127.0.0.1');
    await once(documents, 'listening');
    documentUrl = `https://127.0.0.1:${documents.address().port}/mcp-sdk-host.json`;

    demo = await startDemo({
      env: { PORTCULLIS_DANGER_ALLOW_PRIVATE_CLIENT_METADATA: 'true', SSL_CERT_FILE: cert },
    });
    as = await (await fetch(`${demo.portcullis}/.well-known/oauth-authorization-server`)).json();
    jwks = jose.createRemoteJWKSet(new URL(as.jwks_uri));
  });

  after(async () => {
    await Promise.allSettled([vera.client?.close(), eddie.client?.close()]);
    documents?.closeAllConnections();
    documents?.close();
    if (demo) {
      const code = await stopDemo(demo);
      if (process.env.PORTCULLIS_TEST_SHOW_LOGS) process.stderr.write(`--- portcullis demo logs\n${demo.logs.join('\n')}\n`);
      assert.equal(code, 0, `portcullis demo exits 0 on SIGTERM:\n${demo.logs.join('\n')}`);
    }
    if (tmp) await fsp.rm(tmp, { recursive: true, force: true });
  });

  /** The access token's claims, its signature checked against Portcullis's keys. */
  const claims = async (token) => {
    const { payload } = await jose.jwtVerify(token, jwks, { issuer: as.issuer, audience: demo.mcp, typ: 'at+jwt' });
    return payload;
  };

  // ----- vera: a client named by its metadata document, declaring URL elicitation --------------

  test('discovery: from the 401 the SDK finds the resource metadata, then the authorization server', async () => {
    vera.wire = [];
    vera.browser = new Browser();
    vera.provider = new HostProvider({ browser: vera.browser, demo, person: 'vera', clientMetadataUrl: documentUrl });
    const transport = () =>
      new StreamableHTTPClientTransport(new URL(demo.mcp), { authProvider: vera.provider, fetch: recordingFetch(vera.wire) });
    vera.transport = transport();
    vera.client = newClient(true);
    // No token: the SDK discovers, starts the authorization (our browser completes it at once),
    // and reports that the user had to be sent away.
    await assert.rejects(vera.client.connect(vera.transport), (err) => {
      assert.ok(err instanceof UnauthorizedError, `an UnauthorizedError, not ${err?.name}: ${err?.message}`);
      return true;
    });
    vera.transport = transport();

    // The first request: the MCP endpoint, answered 401 naming the resource metadata (RFC 9728).
    const [first, ...rest] = vera.wire;
    assert.equal(first.method, 'POST');
    assert.equal(first.url, demo.mcp);
    assert.equal(first.status, 401);
    const prmUrl = new URL('/.well-known/oauth-protected-resource/mcp', demo.mcp).href;
    assert.equal(first.wwwAuthenticate, `Bearer resource_metadata="${prmUrl}"`);
    // Then that document, then the authorization server's metadata (RFC 8414) at the issuer it names.
    const gets = rest.filter((r) => r.method === 'GET').map((r) => [r.url, r.status]);
    assert.deepEqual(gets.slice(0, 2), [
      [prmUrl, 200],
      [`${demo.portcullis}/.well-known/oauth-authorization-server`, 200],
    ]);
    const discovery = vera.provider.saved.discovery;
    assert.equal(discovery.authorizationServerUrl, demo.portcullis);
    assert.deepEqual(discovery.resourceMetadata.authorization_servers, [demo.portcullis]);
    assert.equal(discovery.resourceMetadata.resource, demo.mcp);
    assert.equal(discovery.authorizationServerMetadata.issuer, demo.portcullis);
    assert.equal(discovery.authorizationServerMetadata.client_id_metadata_document_supported, true);
  });

  test('registration by client ID metadata document: the SDK uses the document URL as client_id', () => {
    // The SDK did not register: the server supports metadata documents, the host has one.
    assert.equal(vera.provider.saved.client.client_id, documentUrl);
    assert.equal(vera.wire.filter((r) => r.url === as.registration_endpoint).length, 0);
    assert.equal(vera.provider.authorizations.length, 1);
    assert.equal(vera.provider.authorizations[0].searchParams.get('client_id'), documentUrl);
    // Portcullis fetched the document (to learn the client's name and redirect URIs).
    assert.ok(documentFetches.length >= 1, 'Portcullis fetched the metadata document');
    assert.match(documentFetches[0].userAgent, /^portcullis\//);
  });

  test('authorization code + PKCE S256 + resource: the token is for the MCP server', async () => {
    const url = vera.provider.authorizations[0];
    assert.equal(url.origin + url.pathname, as.authorization_endpoint);
    assert.equal(url.searchParams.get('response_type'), 'code');
    assert.equal(url.searchParams.get('code_challenge_method'), 'S256');
    assert.match(url.searchParams.get('code_challenge'), /^[A-Za-z0-9_-]{43}$/);
    assert.equal(url.searchParams.get('redirect_uri'), REDIRECT);
    // RFC 8707: the resource is the MCP server, as its metadata says.
    assert.equal(url.searchParams.get('resource'), demo.mcp);
    // The scope: what the resource metadata advertises (the SDK's choice without a challenge).
    assert.deepEqual(scopes(url.searchParams.get('scope')), ALL_SCOPES);
    // RFC 9207: the redirect names the issuer; the SDK checks it when the code is handed over.
    assert.equal(vera.provider.callback.searchParams.get('iss'), demo.portcullis);

    const before = vera.wire.length;
    await vera.transport.finishAuth(vera.provider.callback.searchParams);
    const redeem = vera.wire.slice(before).find((r) => r.url === as.token_endpoint);
    assert.ok(redeem, 'the SDK redeemed the code at the token endpoint');
    assert.equal(redeem.status, 200);
    const form = new URLSearchParams(redeem.body);
    assert.equal(form.get('grant_type'), 'authorization_code');
    assert.equal(form.get('client_id'), documentUrl);
    assert.equal(form.get('code_verifier'), vera.provider.saved.verifier);
    assert.equal(form.get('resource'), demo.mcp);

    const tokens = vera.provider.saved.tokens;
    assert.deepEqual(scopes(tokens.scope), ALL_SCOPES);
    const payload = await claims(tokens.access_token);
    assert.equal(payload.aud, demo.mcp);
    assert.equal(payload.client_id, documentUrl);
    // vera's role came from single sign-on (her group at the identity provider).
    assert.deepEqual(payload.roles, ['Viewer']);

    // With the token, the connection: the server speaks the pinned revision.
    await vera.client.connect(vera.transport);
    assert.equal(vera.client.getNegotiatedProtocolVersion(), REVISION);
  });

  test('vera (Viewer): her tools; a URL elicitation to connect, then allowed; create_event denied', async () => {
    const { tools } = await vera.client.listTools();
    assert.deepEqual(tools.map((t) => t.name).sort(), ['list_events', 'lookup_customer']);

    // Not connected to the calendar yet: the server asks for a URL elicitation (-32042), which
    // the SDK surfaces as a typed error carrying the elicitation.
    let elicitation;
    await assert.rejects(vera.client.callTool({ name: 'list_events', arguments: {} }), (err) => {
      assert.ok(err instanceof UrlElicitationRequiredError, `a UrlElicitationRequiredError, not ${err?.name}: ${err?.message}`);
      assert.equal(err.code, -32042);
      assert.equal(err.elicitations.length, 1);
      [elicitation] = err.elicitations;
      return true;
    });
    assert.equal(elicitation.mode, 'url');
    assert.equal(typeof elicitation.elicitationId, 'string');
    assert.equal(typeof elicitation.message, 'string');
    // The host opens the URL in the browser she signed in with; she connects her calendar.
    await connectInBrowser(vera.browser, demo, elicitation.url);

    const listed = await vera.client.callTool({ name: 'list_events', arguments: {} });
    assert.ok(!listed.isError, text(listed));
    assert.ok(Array.isArray(JSON.parse(text(listed)).items), text(listed));

    // Writing is not hers: the policies say no, with the explanation.
    const created = await vera.client.callTool({
      name: 'create_event',
      arguments: { title: 'Standup', start: '2030-01-07T09:00:00Z' },
    });
    assert.equal(created.isError, true);
    assert.match(text(created), /^Not allowed:/);

    const customer = await vera.client.callTool({ name: 'lookup_customer', arguments: { name: 'Acme' } });
    assert.ok(!customer.isError, text(customer));
    assert.match(text(customer), /Acme Inc\./);
  });

  // ----- eddie: a registered client, no URL elicitation, a token to read first -----------------

  test('dynamic client registration: without a metadata document the SDK registers', async () => {
    eddie.wire = [];
    eddie.browser = new Browser();
    eddie.provider = new HostProvider({ browser: eddie.browser, demo, person: 'eddie' });
    // A host asking for less than everything (scopes requested as needed): the SDK's auth() with
    // an explicit scope, then the code handed back to it.
    const fetchFn = recordingFetch(eddie.wire);
    assert.equal(await auth(eddie.provider, { serverUrl: demo.mcp, scope: READ_SCOPES.join(' '), fetchFn }), 'REDIRECT');
    const registrations = eddie.wire.filter((r) => r.url === as.registration_endpoint);
    assert.equal(registrations.length, 1);
    assert.equal(registrations[0].method, 'POST');
    assert.equal(registrations[0].status, 201);
    const registered = JSON.parse(registrations[0].body);
    assert.deepEqual(registered.redirect_uris, [REDIRECT]);
    assert.equal(registered.token_endpoint_auth_method, 'none');
    const clientId = eddie.provider.saved.client.client_id;
    assert.match(clientId, /^dyn_/);
    assert.equal(eddie.provider.authorizations[0].searchParams.get('client_id'), clientId);
    assert.deepEqual(scopes(eddie.provider.authorizations[0].searchParams.get('scope')), READ_SCOPES);

    eddie.transport = new StreamableHTTPClientTransport(new URL(demo.mcp), { authProvider: eddie.provider, fetch: fetchFn });
    await eddie.transport.finishAuth(eddie.provider.callback.searchParams);
    const payload = await claims(eddie.provider.saved.tokens.access_token);
    assert.equal(payload.client_id, clientId);
    assert.deepEqual(scopes(payload.scope), READ_SCOPES);
    assert.deepEqual(payload.roles, ['Editor']);

    eddie.client = newClient(false);
    await eddie.client.connect(eddie.transport);
    const { tools } = await eddie.client.listTools();
    assert.deepEqual(tools.map((t) => t.name).sort(), ['create_event', 'list_events']);
  });

  test('step-up: create_event with a read-only token is a 403 insufficient_scope; the SDK re-authorizes', async () => {
    const before = eddie.wire.length;
    const call = () => eddie.client.callTool({ name: 'create_event', arguments: { title: 'Planning', start: '2030-01-08T10:00:00Z' } });
    // The SDK asks for the union of what it has and what the challenge names, through the
    // browser again (a refresh cannot widen a grant); then it reports that the user was sent away.
    await assert.rejects(call(), (err) => {
      assert.ok(err instanceof UnauthorizedError, `an UnauthorizedError, not ${err?.name}: ${err?.message}`);
      return true;
    });
    const forbidden = eddie.wire.slice(before).find((r) => r.status === 403);
    assert.ok(forbidden, 'the MCP server answered 403');
    assert.equal(forbidden.url, demo.mcp);
    const challenge = Object.fromEntries(
      [...forbidden.wwwAuthenticate.matchAll(/(\w+)="([^"]*)"/g)].map(([, k, v]) => [k, v]),
    );
    assert.match(forbidden.wwwAuthenticate, /^Bearer /);
    assert.equal(challenge.error, 'insufficient_scope');
    // What the tool needs: writing, and fetching the calendar's token.
    assert.deepEqual(scopes(challenge.scope), ['calendar.write', 'outbound.token.fetch']);
    assert.equal(challenge.resource_metadata, new URL('/.well-known/oauth-protected-resource/mcp', demo.mcp).href);

    // The SDK's new authorization request: what the token had plus what the challenge named.
    assert.equal(eddie.provider.authorizations.length, 2);
    const stepUp = eddie.provider.authorizations[1];
    assert.deepEqual(scopes(stepUp.searchParams.get('scope')), ALL_SCOPES);
    assert.equal(stepUp.searchParams.get('resource'), demo.mcp);
    // The same registration: no second DCR.
    assert.equal(stepUp.searchParams.get('client_id'), eddie.provider.saved.client.client_id);
    assert.equal(eddie.wire.filter((r) => r.url === as.registration_endpoint).length, 1);

    await eddie.transport.finishAuth(eddie.provider.callback.searchParams);
    const payload = await claims(eddie.provider.saved.tokens.access_token);
    assert.deepEqual(scopes(payload.scope), ALL_SCOPES);

    // The call again, with the wider token: past the scope check, to the tool, which says that
    // the calendar is not connected yet, with the link as text (no URL elicitation declared).
    const result = await call();
    assert.equal(result.isError, true);
    const m = text(result).match(/^Connect your account to continue: (\S+)$/);
    assert.ok(m, text(result));
    eddie.link = m[1];
  });

  test('eddie (Editor): connects through the link in the tool result, then create_event is allowed', async () => {
    await connectInBrowser(eddie.browser, demo, eddie.link);
    const created = await eddie.client.callTool({
      name: 'create_event',
      arguments: { title: 'Planning', start: '2030-01-08T10:00:00Z' },
    });
    assert.ok(!created.isError, text(created));
    assert.match(text(created), /Planning/);
  });

  // ----- The policy changes under a connected client -------------------------------------------

  test('an admin narrows "Viewers read" to Editors: vera\'s next list_events is not allowed', async () => {
    const admin = (method, p, json) =>
      fetch(`${demo.portcullis}${p}`, {
        method,
        headers: { authorization: `Bearer ${demo.adminKey}`, ...(json ? { 'content-type': 'application/json' } : {}) },
        body: json ? JSON.stringify(json) : undefined,
      });
    const listed = await admin('GET', '/v1/mgmt/outbound-apps/calendar/policies');
    assert.equal(listed.status, 200);
    const policy = (await listed.json()).items.find((p) => p.name === 'Viewers read');
    assert.ok(policy, 'the demo has a policy "Viewers read"');
    assert.deepEqual(policy.conditions, [{ source: 'userRoles', operator: 'in', value: ['Viewer', 'Editor'] }]);
    const put = await admin('PUT', `/v1/mgmt/outbound-apps/calendar/policies/${policy.id}`, {
      name: policy.name,
      conditions: [{ source: 'userRoles', operator: 'in', value: ['Editor'] }],
      scopes: policy.scopes,
    });
    assert.equal(put.status, 200, await put.text());

    // Her token and her connection are what they were: the policies decide at every call.
    const result = await vera.client.callTool({ name: 'list_events', arguments: {} });
    assert.equal(result.isError, true);
    assert.match(text(result), /^Not allowed:/);
    // The other policy is untouched: eddie still writes.
    const his = await eddie.client.callTool({
      name: 'create_event',
      arguments: { title: 'Retro', start: '2030-01-09T15:00:00Z' },
    });
    assert.ok(!his.isError, text(his));
  });
});
