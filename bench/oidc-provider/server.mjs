// panva's oidc-provider issuing what Portcullis's client_credentials grant issues: an ES256
// JWT access token (RFC 9068, through resource indicators) for a confidential client
// authenticating with client_secret_basic. bench/runtime/src/bin/oauth-load.rs runs it.
//
// node server.mjs [port] [workers]; or PORT / WORKERS in the environment. Port 0 (the
// default) takes a free one. With more than one worker, node:cluster forks them onto the same
// port. CLIENT_SECRET is the secret of client "gateway"; RESOURCE the resource indicator.
// Prints `oidc-provider listening on http://127.0.0.1:<port> (<n> workers)` once serving.

import cluster from 'node:cluster';
import { generateKeyPairSync } from 'node:crypto';
import { createServer } from 'node:http';

import Provider, { errors } from 'oidc-provider';

const port = Number(process.argv[2] ?? process.env.PORT ?? 0);
const workers = Number(process.argv[3] ?? process.env.WORKERS ?? 1);
const secret = process.env.CLIENT_SECRET ?? 'bench-secret';
const resource = process.env.RESOURCE ?? 'https://mcp.bench.example/mcp';

// One signing key for every worker: the primary makes it, the workers read it.
const jwk =
  process.env.SIGNING_JWK ??
  JSON.stringify({
    ...generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' }),
    alg: 'ES256',
    use: 'sig',
    kid: 'bench-es256',
  });

const ready = (address) =>
  console.log(`oidc-provider listening on http://127.0.0.1:${address.port} (${workers} workers)`);

if (workers > 1 && cluster.isPrimary) {
  let listening = 0;
  cluster.on('listening', (_worker, address) => {
    listening += 1;
    if (listening === workers) ready(address);
  });
  cluster.on('exit', (_worker, code) => {
    console.error(`an oidc-provider worker exited (${code})`);
    process.exit(1);
  });
  for (let i = 0; i < workers; i += 1) cluster.fork({ SIGNING_JWK: jwk });
} else {
  const server = createServer();
  server.listen(port, '127.0.0.1', () => {
    const address = server.address();
    const provider = new Provider(`http://127.0.0.1:${address.port}`, {
      clients: [
        {
          client_id: 'gateway',
          client_secret: secret,
          grant_types: ['client_credentials'],
          response_types: [],
          redirect_uris: [],
          token_endpoint_auth_method: 'client_secret_basic',
        },
      ],
      // The only key is ES256: ID tokens would be signed with it too (none are issued here).
      clientDefaults: { id_token_signed_response_alg: 'ES256' },
      jwks: { keys: [JSON.parse(jwk)] },
      cookies: { keys: ['bench cookie key'] },
      features: {
        devInteractions: { enabled: false },
        clientCredentials: { enabled: true },
        resourceIndicators: {
          enabled: true,
          defaultResource: () => resource,
          useGrantedResource: () => true,
          getResourceServerInfo: (_ctx, indicator) => {
            if (indicator !== resource) throw new errors.InvalidTarget();
            return {
              scope: 'tools.read tools.write',
              audience: resource,
              accessTokenFormat: 'jwt',
              jwt: { sign: { alg: 'ES256' } },
            };
          },
        },
      },
    });
    server.on('request', provider.callback());
    if (cluster.isPrimary) ready(address);
  });
}
