// A stand-in third-party OAuth provider for Portcullis's tests: oauth2-mock-server, with its hooks
// used to behave like a real provider (scopes granted at /authorize come back on the code exchange
// and on refresh; refresh tokens rotate and a used one is rejected with invalid_grant), plus a
// control endpoint to inject failures: invalid_grant, 5xx, slow and malformed answers.
//
// Usage: node provider.mjs   → prints one JSON line {"url": ..., "control": ...} once listening.
// Control: POST {control}/mode with JSON (see `defaults`); GET {control}/stats; POST {control}/reset.

import http from 'node:http';
import { randomUUID } from 'node:crypto';
import { OAuth2Server } from 'oauth2-mock-server';

const defaults = {
  // What the token endpoint does for the next requests: "ok", "invalid_grant", "error500",
  // "slow" (waits delayMs, then answers normally), "hang" (never answers), "malformed"
  // (200 with a body that is not JSON), "no_access_token" (200 without access_token).
  token: 'ok',
  // How many requests the mode applies to before "ok" again (0: all of them).
  times: 0,
  delayMs: 3000,
  // Rotate refresh tokens on refresh (and reject a used one).
  rotate: true,
  // Lifetime of issued access tokens, in seconds.
  expiresIn: 3600,
  // Reject refresh tokens this provider did not issue (or that were rotated away).
  strict: true,
  // Answer from /revoke: 200, or an HTTP status to fail with.
  revokeStatus: 200,
  // Claims set in the id_tokens of code exchanges (as an OpenID provider signing users in):
  // `sub`, `groups`, `email`... or a wrong `nonce`, `aud`, `iss` or `exp` to test refusals.
  idClaims: {},
};

let mode = { ...defaults };
let remaining = 0;
const stats = { token: 0, authorization_code: 0, refresh_token: 0, revoke: 0, userinfo: 0, refreshScopes: [], codes: 0 };
const codeScopes = new Map(); // code -> scope granted at /authorize
const refreshTokens = new Map(); // valid refresh token -> scope of its grant

const server = new OAuth2Server();
await server.issuer.keys.generate('RS256');
const service = server.service;

service.on('beforeAuthorizeRedirect', (redirect, req) => {
  const code = redirect.url.searchParams.get('code');
  if (code) {
    codeScopes.set(code, typeof req.query.scope === 'string' ? req.query.scope : '');
    stats.codes += 1;
  }
});

service.on('beforeTokenSigning', (token, req) => {
  token.payload.sub = 'provider-user-1';
  // A unique id: two tokens issued in the same second must still differ.
  token.payload.jti = randomUUID();
  // The id_token of a code exchange is the token without a scope.
  if (req?.body?.grant_type === 'authorization_code' && !('scope' in token.payload)) {
    Object.assign(token.payload, mode.idClaims);
  }
});

service.on('beforeResponse', (resp, req) => {
  const body = req.body || {};
  if (resp.statusCode !== 200) return;
  resp.body.expires_in = mode.expiresIn;
  if (body.grant_type === 'authorization_code') {
    const scope = codeScopes.get(body.code) ?? '';
    codeScopes.delete(body.code);
    resp.body.scope = scope;
    refreshTokens.set(resp.body.refresh_token, scope);
  } else if (body.grant_type === 'refresh_token') {
    const grantScope = refreshTokens.get(body.refresh_token);
    if (mode.strict && grantScope === undefined) {
      resp.statusCode = 400;
      resp.body = { error: 'invalid_grant', error_description: 'unknown or already used refresh token' };
      return;
    }
    const asked = typeof body.scope === 'string' ? body.scope : undefined;
    stats.refreshScopes.push(asked ?? null);
    resp.body.scope = asked ?? grantScope ?? '';
    if (mode.rotate) {
      refreshTokens.delete(body.refresh_token);
      refreshTokens.set(resp.body.refresh_token, grantScope ?? '');
    } else {
      delete resp.body.refresh_token;
    }
  }
});

service.on('beforeRevoke', (resp) => {
  stats.revoke += 1;
  resp.statusCode = mode.revokeStatus;
});

service.on('beforeUserinfo', () => {
  stats.userinfo += 1;
});

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function readBody(req) {
  return new Promise((resolve) => {
    let data = '';
    req.on('data', (c) => (data += c));
    req.on('end', () => resolve(data));
  });
}

const provider = http.createServer(async (req, res) => {
  if (req.method === 'POST' && req.url.startsWith('/token')) {
    stats.token += 1;
    // Peek at the grant type without consuming the stream for the mock: buffer and replay.
    const raw = await readBody(req);
    const params = new URLSearchParams(raw);
    const grant = params.get('grant_type');
    if (grant === 'authorization_code') stats.authorization_code += 1;
    if (grant === 'refresh_token') stats.refresh_token += 1;
    let current = mode.token;
    if (current !== 'ok' && mode.times > 0) {
      remaining -= 1;
      if (remaining < 0) current = 'ok';
    }
    if (current === 'hang') return; // never answers
    if (current === 'slow') await sleep(mode.delayMs);
    if (current === 'invalid_grant') {
      res.writeHead(400, { 'content-type': 'application/json' });
      return res.end(JSON.stringify({ error: 'invalid_grant', error_description: 'the grant was revoked' }));
    }
    if (current === 'error500') {
      res.writeHead(503, { 'content-type': 'text/plain' });
      return res.end('upstream unavailable');
    }
    if (current === 'malformed') {
      res.writeHead(200, { 'content-type': 'application/json' });
      return res.end('{"access_token": ');
    }
    if (current === 'no_access_token') {
      res.writeHead(200, { 'content-type': 'application/json' });
      return res.end(JSON.stringify({ token_type: 'Bearer', expires_in: 3600 }));
    }
    // Replay the buffered body into the mock's express handler.
    const { Readable } = await import('node:stream');
    const replay = Readable.from([Buffer.from(raw)]);
    Object.assign(replay, { headers: req.headers, method: req.method, url: req.url, httpVersion: req.httpVersion, socket: req.socket, connection: req.socket });
    return service.requestHandler(replay, res);
  }
  return service.requestHandler(req, res);
});

const control = http.createServer(async (req, res) => {
  const send = (status, body) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };
  if (req.method === 'GET' && req.url === '/stats') return send(200, { ...stats, validRefreshTokens: refreshTokens.size });
  if (req.method === 'POST' && req.url === '/mode') {
    const patch = JSON.parse((await readBody(req)) || '{}');
    mode = { ...mode, ...patch };
    remaining = mode.times;
    return send(200, mode);
  }
  if (req.method === 'POST' && req.url === '/reset') {
    mode = { ...defaults };
    remaining = 0;
    for (const k of Object.keys(stats)) stats[k] = Array.isArray(stats[k]) ? [] : 0;
    return send(200, mode);
  }
  if (req.method === 'POST' && req.url === '/refresh-tokens') {
    // Register refresh tokens as valid (for tokens imported into Portcullis by tests).
    const { tokens, scope } = JSON.parse((await readBody(req)) || '{}');
    for (const t of tokens || []) refreshTokens.set(t, scope ?? '');
    return send(200, { registered: (tokens || []).length });
  }
  send(404, { error: 'not_found' });
});

await new Promise((r) => provider.listen(0, '127.0.0.1', r));
await new Promise((r) => control.listen(0, '127.0.0.1', r));
const url = `http://127.0.0.1:${provider.address().port}`;
server.issuer.url = url;
console.log(JSON.stringify({ url, control: `http://127.0.0.1:${control.address().port}` }));

const stop = () => process.exit(0);
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
// Exit with the parent: when stdin closes (the test process died), stop.
process.stdin.on('end', stop);
process.stdin.resume();
