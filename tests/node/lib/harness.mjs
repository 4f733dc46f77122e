// What the Node.js interop tests stand on: a real `portcullis serve` process (the binary named by
// PORTCULLIS_BIN) on a free loopback port with SQLite in a temporary data directory; a real IdP
// (jose keys, a JWKS served over node:http) signing the users' inbound access tokens; and the
// stand-in third-party OAuth provider (../provider.mjs, oauth2-mock-server) as a child process.
//
// Every process started here is stopped by `stop()` (call it from an `after` hook) and, should the
// test process die first, killed when it exits.
//
// Environment: PORTCULLIS_BIN (default: this checkout's target/debug/portcullis);
// PORTCULLIS_TEST_LOG_LEVEL (the server's log filter, default info); PORTCULLIS_TEST_SHOW_LOGS=1
// prints the server's last log lines when a world stops. No other PORTCULLIS_* variable of the
// caller reaches the server.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';

import * as jose from 'jose';

const here = path.dirname(fileURLToPath(import.meta.url));
/** `tests/node`. */
export const nodeDir = path.resolve(here, '..');
/** The repository's root. */
export const repoRoot = path.resolve(nodeDir, '../..');

/** The fetch scope inbound tokens need (the server's default `inbound.fetch_scope`). */
export const FETCH_SCOPE = 'outbound.token.fetch';
/** The RFC 8693 grant type and token type. */
export const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
export const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';
/** The `resource` naming an outbound app in a token exchange. */
export const appResource = (appId) => `urn:portcullis:outbound-app:${appId}`;

// ----- Child processes -------------------------------------------------------------------------

const children = new Set();
process.on('exit', () => {
  for (const c of children) {
    if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  }
});

function track(child) {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

/** Stops a child: `signal`, then SIGKILL after `graceMs`. Resolves to its exit code (or signal). */
async function stopChild(child, { signal = 'SIGTERM', graceMs = 10_000 } = {}) {
  if (child.exitCode !== null || child.signalCode !== null) return child.exitCode ?? child.signalCode;
  const exited = once(child, 'exit');
  child.kill(signal);
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  const [code, sig] = await exited;
  clearTimeout(timer);
  return code ?? sig;
}

/** Keeps the last `max` lines a stream printed. */
function tail(stream, lines, max = 400) {
  readline.createInterface({ input: stream }).on('line', (l) => {
    lines.push(l);
    if (lines.length > max) lines.shift();
  });
}

/** A TCP port free right now on 127.0.0.1. */
export async function freePort() {
  const srv = net.createServer();
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const { port } = srv.address();
  srv.close();
  await once(srv, 'close');
  return port;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** An HTTP call: status, parsed JSON body (`null` when empty or not JSON), raw text, headers. */
export async function call(url, { method = 'GET', token, json, form, headers = {}, redirect = 'manual' } = {}) {
  const h = new Headers(headers);
  let body;
  if (token !== undefined) h.set('authorization', `Bearer ${token}`);
  if (json !== undefined) {
    h.set('content-type', 'application/json');
    body = JSON.stringify(json);
  }
  if (form !== undefined) {
    h.set('content-type', 'application/x-www-form-urlencoded');
    body = new URLSearchParams(form).toString();
  }
  const resp = await fetch(url, { method, headers: h, body, redirect });
  const text = await resp.text();
  let parsed = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    parsed = null;
  }
  return { status: resp.status, body: parsed, text, headers: resp.headers };
}

// ----- Portcullis ------------------------------------------------------------------------------

/** The `portcullis` binary: PORTCULLIS_BIN, else this checkout's debug build. */
export function portcullisBin() {
  const bin = process.env.PORTCULLIS_BIN || path.join(repoRoot, 'target/debug/portcullis');
  if (!fs.existsSync(bin)) {
    throw new Error(
      `no portcullis binary at ${bin}: run \`cargo build -p portcullis-cli\` and set PORTCULLIS_BIN`,
    );
  }
  return bin;
}

/** A fresh master key ring entry, `id:base64(32 bytes)`. */
export function masterKey(id = 'test-1') {
  return `${id}:${randomBytes(32).toString('base64')}`;
}

/** A running `portcullis serve` process and a client for its API. */
export class Portcullis {
  /**
   * Starts a server on a free port with SQLite in a new temporary data directory. `env` adds or
   * overrides PORTCULLIS_* settings. Resolves once `/readyz` answers 200.
   */
  static async start({ env = {}, readyTimeoutMs = 30_000 } = {}) {
    const bin = portcullisBin();
    const dataDir = await fsp.mkdtemp(path.join(os.tmpdir(), 'portcullis-interop-'));
    const adminKey = `test-admin-${randomBytes(18).toString('base64url')}`;
    // The caller's own PORTCULLIS_* settings (a database URL, a config file) must not leak in.
    const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('PORTCULLIS_')));
    let lastError;
    for (let attempt = 0; attempt < 3; attempt += 1) {
      const port = await freePort();
      const fullEnv = {
        ...base,
        PORTCULLIS_LISTEN: `127.0.0.1:${port}`,
        PORTCULLIS_DATA_DIR: dataDir,
        PORTCULLIS_BOOTSTRAP_ADMIN_KEY: adminKey,
        PORTCULLIS_MASTER_KEY: masterKey(),
        PORTCULLIS_ALLOWED_RETURN_URLS: 'http://app.test/',
        PORTCULLIS_LOG_LEVEL: process.env.PORTCULLIS_TEST_LOG_LEVEL || 'info',
        ...env,
      };
      const child = track(spawn(bin, ['serve'], { env: fullEnv, stdio: ['ignore', 'pipe', 'pipe'] }));
      const lines = [];
      tail(child.stdout, lines);
      tail(child.stderr, lines);
      const server = new Portcullis({ child, lines, port, dataDir, adminKey, env: fullEnv });
      try {
        await server.#waitReady(readyTimeoutMs);
        return server;
      } catch (e) {
        lastError = e;
        await stopChild(child, { signal: 'SIGKILL' });
        // Someone took the port between our probe and the bind: try another one.
        if (!/cannot listen/.test(lines.join('\n'))) break;
      }
    }
    await fsp.rm(dataDir, { recursive: true, force: true });
    throw lastError;
  }

  constructor({ child, lines, port, dataDir, adminKey, env }) {
    this.child = child;
    this.lines = lines;
    this.port = port;
    /** The base URL (also its public URL: the callback is under it). */
    this.url = `http://127.0.0.1:${port}`;
    this.dataDir = dataDir;
    /** The bootstrap admin key. */
    this.adminKey = adminKey;
    this.env = env;
    /** The cookies Portcullis set in "the user's browser" these helpers play (connect links). */
    this.jar = new Map();
  }

  /** A request as the helpers' browser: with its cookies, keeping those set; no redirects followed. */
  async browse(url, init = {}) {
    const cookie = [...this.jar].map(([k, v]) => `${k}=${v}`).join('; ');
    const resp = await fetch(url, { ...init, redirect: 'manual', headers: { ...(init.headers || {}), cookie } });
    for (const set of resp.headers.getSetCookie()) {
      assert.match(set, /HttpOnly/, set);
      const [pair] = set.split(';');
      const i = pair.indexOf('=');
      this.jar.set(pair.slice(0, i), pair.slice(i + 1));
    }
    return resp;
  }

  /**
   * A connect link's page, then "Continue", in the helpers' browser: `{url}` of the provider, or
   * `{status, page}` where it stopped.
   */
  async continueLink(link) {
    const page = await this.browse(link);
    const html = await page.text();
    if (page.status !== 200) return { status: page.status, page: html };
    const csrf = /name="csrf" value="([^"]*)"/.exec(html)?.[1];
    assert.ok(csrf, `the link's page has a form: ${html}`);
    const go = await this.browse(link, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ action: 'continue', csrf }).toString(),
    });
    if (go.status !== 303) return { status: go.status, page: await go.text() };
    return { url: go.headers.get('location') };
  }

  /** What the server logged last (for failure messages). */
  logs() {
    return this.lines.join('\n');
  }

  async #waitReady(timeoutMs) {
    const deadline = Date.now() + timeoutMs;
    let last = 'no answer';
    while (Date.now() < deadline) {
      if (this.child.exitCode !== null || this.child.signalCode !== null) {
        throw new Error(`portcullis serve exited (${this.child.exitCode ?? this.child.signalCode}) before it was ready:\n${this.logs()}`);
      }
      try {
        const r = await call(`${this.url}/readyz`);
        if (r.status === 200) return;
        last = `${r.status} ${r.text}`;
      } catch (e) {
        last = e.cause?.code ?? e.message;
      }
      await sleep(50);
    }
    throw new Error(`portcullis serve was not ready within ${timeoutMs} ms (last: ${last}):\n${this.logs()}`);
  }

  /** Stops the server (SIGTERM: a graceful shutdown) and removes its data. Resolves to its exit code. */
  async stop() {
    const code = await stopChild(this.child);
    await fsp.rm(this.dataDir, { recursive: true, force: true });
    return code;
  }

  /** A call to this server (`path` starts with `/`). */
  request(method, p, options = {}) {
    return call(`${this.url}${p}`, { ...options, method });
  }

  /** A management call with the admin key. */
  admin(method, p, json) {
    return this.request(method, p, { token: this.adminKey, json });
  }

  /** A management call that must succeed; its JSON body. */
  async must(method, p, json) {
    const r = await this.admin(method, p, json);
    assert.ok(r.status >= 200 && r.status < 300, `${method} ${p} answered ${r.status}: ${r.text}`);
    return r.body;
  }

  /** Opens and continues a connect link (a page of Portcullis): the provider's authorization URL. */
  async openLink(link) {
    const opened = await this.continueLink(link);
    assert.ok(opened.url, `the connect link leads to the provider (it answered ${opened.status}: ${opened.page})`);
    return opened.url;
  }

  /** Trusts `idp`'s tokens. */
  trust(idp) {
    return this.must('POST', '/v1/mgmt/issuers', idp.registration());
  }

  /** Registers an outbound app. */
  createApp(body) {
    return this.must('POST', '/v1/mgmt/outbound-apps', body);
  }

  /** Adds a policy to an app; the policy as stored (with its `id`). */
  createPolicy(appId, doc) {
    return this.must('POST', `/v1/mgmt/outbound-apps/${appId}/policies`, doc);
  }

  /** Replaces a policy. */
  updatePolicy(appId, policyId, doc) {
    return this.must('PUT', `/v1/mgmt/outbound-apps/${appId}/policies/${policyId}`, doc);
  }

  /** Creates a role. */
  createRole(name) {
    return this.must('POST', '/v1/mgmt/roles', { name });
  }

  /** Creates a user in the directory (`{id, roles, ...}`). */
  createUser(user) {
    return this.must('POST', '/v1/mgmt/users', user);
  }

  /** Replaces a user. */
  updateUser(id, user) {
    return this.must('PUT', `/v1/mgmt/users/${id}`, user);
  }

  /** Registers a confidential client for token exchange: `{id, clientSecret, ...}` (the only time the secret is shown). */
  createClient(body) {
    return this.must('POST', '/v1/mgmt/clients', body);
  }

  /** `POST /v1/outbound/apps/{app}/token` with an inbound token. */
  fetchToken(token, appId, body = {}) {
    return this.request('POST', `/v1/outbound/apps/${appId}/token`, { token, json: body });
  }

  /** Starts a consent for the token's user: the connect link (a page of Portcullis). */
  async connectUrl(token, appId, body = {}) {
    const r = await this.request('POST', `/v1/outbound/apps/${appId}/connect`, { token, json: body });
    assert.equal(r.status, 200, `connect answered ${r.status}: ${r.text}`);
    assert.equal(typeof r.body.url, 'string');
    return r.body.url;
  }

  /**
   * Plays the user's browser through a consent: the provider's authorization endpoint (which
   * redirects back at once with a code), then Portcullis's callback. Returns the callback's
   * status, its `Location` (when it redirects) and its page.
   */
  async consent(authorizationUrl) {
    // A connect link is a page of Portcullis that leads to the provider.
    if (authorizationUrl.startsWith(`${this.url}/v1/outbound/connect/`)) {
      const opened = await this.continueLink(authorizationUrl);
      if (!opened.url) return { status: opened.status, location: null, page: opened.page };
      authorizationUrl = opened.url;
    }
    const auth = await fetch(authorizationUrl, { redirect: 'manual' });
    assert.equal(auth.status, 302, `the provider redirects back (it answered ${auth.status})`);
    const callback = auth.headers.get('location');
    assert.ok(callback.startsWith(`${this.url}/v1/outbound/callback/`), `the provider redirects to the app's callback, not ${callback}`);
    const cb = await this.browse(callback);
    return { status: cb.status, location: cb.headers.get('location'), page: await cb.text() };
  }

  /** Connects `appId` for the token's user with `scopes`, end to end. */
  async connect(token, appId, scopes) {
    const url = await this.connectUrl(token, appId, scopes ? { scopes } : {});
    const r = await this.consent(url);
    assert.equal(r.status, 200, `the consent completes: ${r.page}\n${this.logs()}`);
    return r;
  }
}

// ----- The IdP ---------------------------------------------------------------------------------

/** A JWKS-publishing identity provider signing inbound access tokens (ES256 and RS256 keys). */
export class Idp {
  static async start({ audience = 'https://mcp.example.test/mcp' } = {}) {
    const keys = {};
    for (const alg of ['ES256', 'RS256']) {
      const { publicKey, privateKey } = await jose.generateKeyPair(alg, { modulusLength: 2048 });
      const jwk = await jose.exportJWK(publicKey);
      jwk.kid = await jose.calculateJwkThumbprint(jwk);
      jwk.alg = alg;
      jwk.use = 'sig';
      keys[alg] = { privateKey, jwk };
    }
    const idp = new Idp(keys, audience);
    idp.server = http.createServer((req, res) => {
      if (req.method === 'GET' && req.url === '/jwks.json') {
        idp.jwksFetches += 1;
        res.writeHead(200, { 'content-type': 'application/json' });
        return res.end(JSON.stringify({ keys: Object.values(idp.keys).map((k) => k.jwk) }));
      }
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end('{"error":"not_found"}');
    });
    idp.server.listen(0, '127.0.0.1');
    await once(idp.server, 'listening');
    idp.issuer = `http://127.0.0.1:${idp.server.address().port}`;
    idp.jwksUrl = `${idp.issuer}/jwks.json`;
    return idp;
  }

  constructor(keys, audience) {
    this.keys = keys;
    this.audience = audience;
    this.jwksFetches = 0;
  }

  /** Default claims for `sub`: issuer, audience, five minutes of validity, the fetch scope. */
  claims(sub) {
    const now = Math.floor(Date.now() / 1000);
    return {
      iss: this.issuer,
      aud: this.audience,
      sub,
      iat: now,
      exp: now + 300,
      scope: `openid ${FETCH_SCOPE}`,
      azp: 'mcp-client',
    };
  }

  /**
   * An access token (`typ: at+jwt`) for `sub`, signed with the key of `alg`; `claims` are merged
   * over the defaults (a `null` removes a claim), e.g. `{roles: ['editor']}`.
   */
  async token(sub, { alg = 'ES256', claims = {} } = {}) {
    const payload = this.claims(sub);
    for (const [k, v] of Object.entries(claims)) {
      if (v === null) delete payload[k];
      else payload[k] = v;
    }
    const key = this.keys[alg];
    assert.ok(key, `no ${alg} key`);
    return new jose.SignJWT(payload)
      .setProtectedHeader({ alg, kid: key.jwk.kid, typ: 'at+jwt' })
      .sign(key.privateKey);
  }

  /** The identity links that make `sub` at this IdP a directory user (`identities` of a user). */
  identity(sub) {
    return [{ issuer: this.issuer, subject: sub }];
  }

  /** The issuer registration body for `/v1/mgmt/issuers`. */
  registration() {
    return {
      issuer: this.issuer,
      jwksUrl: this.jwksUrl,
      audiences: [this.audience],
      algorithms: ['ES256', 'RS256'],
      rolesClaim: 'roles',
      tenantClaim: 'org_id',
      clockSkewSeconds: 5,
    };
  }

  async stop() {
    this.server.closeAllConnections();
    this.server.close();
  }
}

// ----- The stand-in provider -------------------------------------------------------------------

/** The stand-in third-party OAuth provider: ../provider.mjs (oauth2-mock-server) in a child process. */
export class Provider {
  static async start() {
    const child = track(
      spawn(process.execPath, ['provider.mjs'], { cwd: nodeDir, stdio: ['pipe', 'pipe', 'inherit'] }),
    );
    const lines = readline.createInterface({ input: child.stdout });
    const first = await Promise.race([
      once(lines, 'line').then(([l]) => l),
      once(child, 'exit').then(([code]) => {
        throw new Error(`provider.mjs exited (${code}) before it was listening`);
      }),
    ]);
    const { url, control } = JSON.parse(first);
    return new Provider(child, url, control);
  }

  constructor(child, url, control) {
    this.child = child;
    /** Its base URL (authorize, token, revoke, userinfo, jwks live under it). */
    this.url = url;
    this.control = control;
  }

  /** Sets its behaviour (see `defaults` in provider.mjs). */
  async set(mode) {
    const r = await call(`${this.control}/mode`, { method: 'POST', json: mode });
    assert.equal(r.status, 200);
  }

  /** Back to normal, counters at zero. */
  async reset() {
    await call(`${this.control}/reset`, { method: 'POST' });
  }

  /** The counters (`token`, `authorization_code`, `refresh_token`, `revoke`, ...). */
  async stats() {
    return (await call(`${this.control}/stats`)).body;
  }

  /** The outbound app registration body for this provider. */
  app(id, scopes, extra = {}) {
    return {
      id,
      name: `App ${id}`,
      type: 'oauth',
      clientId: `${id}-client`,
      clientSecret: `${id}-secret`,
      authorizationUrl: `${this.url}/authorize`,
      tokenUrl: `${this.url}/token`,
      revocationUrl: `${this.url}/revoke`,
      userinfoUrl: `${this.url}/userinfo`,
      scopes: scopes.map((name) => ({ name })),
      defaultScopes: [scopes[0]],
      pkce: true,
      ...extra,
    };
  }

  /** Stops it (it exits when its stdin closes). */
  async stop() {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = once(this.child, 'exit');
    this.child.stdin.end();
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(timer);
  }
}

// ----- All three -------------------------------------------------------------------------------

/**
 * A server, an IdP it trusts and a provider, started together. `stop()` stops them all and
 * asserts that the server shut down cleanly.
 */
export async function startWorld({ env } = {}) {
  const started = await Promise.allSettled([Portcullis.start({ env }), Idp.start(), Provider.start()]);
  const [server, idp, provider] = started.map((s) => (s.status === 'fulfilled' ? s.value : undefined));
  const failed = started.find((s) => s.status === 'rejected');
  const stop = async () => {
    const results = await Promise.allSettled([server?.stop(), idp?.stop(), provider?.stop()]);
    return results[0].status === 'fulfilled' ? results[0].value : undefined;
  };
  if (failed) {
    await stop();
    throw failed.reason;
  }
  await server.trust(idp);
  return {
    server,
    idp,
    provider,
    async stop() {
      const code = await stop();
      if (process.env.PORTCULLIS_TEST_SHOW_LOGS) process.stderr.write(`--- portcullis serve logs\n${server.logs()}\n`);
      assert.equal(code, 0, `portcullis serve exits 0 on SIGTERM:\n${server.logs()}`);
    },
  };
}
