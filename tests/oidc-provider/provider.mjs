// A real OpenID Provider for the integration tests: oidc-provider (a certified OP) on loopback
// HTTP, its in-memory adapter, its own development login and consent pages (any login, any
// password), and two confidential clients. scripts/oidc-provider installs and starts it.
//
// Usage: node provider.mjs [PORT]   (or PORT=...; 0 or nothing picks a free port)
//
// Once it serves, it prints exactly one line on stdout, `listening <port>`; its issuer is then
// http://127.0.0.1:<port>. Everything else (oidc-provider's development notices, errors) goes
// to stderr.
//
// Accounts: the login typed is the subject and the `email` claim; `email_verified` is true
// unless the login starts with `unverified`; the session's `amr` is ["pwd", "mfa"] when the
// login contains `+mfa`, else ["pwd"].
//
// Clients (client_secret_basic, authorization code with PKCE S256, response type code):
//   app    ID tokens RS256
//   hs256  ID tokens HS256 (keyed with its secret): a hostile case, the backend must refuse them
// Both accept any http(s) redirect_uri on 127.0.0.1, localhost or auth.test.example, any port,
// whose path matches ^/auth/oidc/[a-z0-9-]+/callback$ (no query, no fragment, canonical form).

import { generateKeyPairSync } from 'node:crypto';
import { createServer } from 'node:http';

// oidc-provider writes its development notices with console.info (stdout): send them, and
// anything else, to stderr, so stdout carries the one `listening` line. This must happen before
// the module loads (it warns at import), hence the dynamic import below.
console.log = console.info = console.debug = (...args) => console.error(...args);

const { default: Provider } = await import('oidc-provider');

const CALLBACK_PATH = /^\/auth\/oidc\/[a-z0-9-]+\/callback$/;
const CALLBACK_HOSTS = new Set(['127.0.0.1', 'localhost', 'auth.test.example']);

/** Whether `value` is a redirect_uri the test clients accept. */
function callbackAllowed(value) {
  if (typeof value !== 'string') return false;
  const url = URL.parse(value);
  return (
    url !== null &&
    url.href === value &&
    (url.protocol === 'http:' || url.protocol === 'https:') &&
    url.username === '' &&
    url.password === '' &&
    CALLBACK_HOSTS.has(url.hostname) &&
    CALLBACK_PATH.test(url.pathname) &&
    url.search === '' &&
    url.hash === ''
  );
}

function signingKey(kid, type, options, alg) {
  const { privateKey } = generateKeyPairSync(type, options);
  return { ...privateKey.export({ format: 'jwk' }), kid, alg, use: 'sig' };
}

function escapeHtml(value) {
  return String(value).replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c],
  );
}

const requested = process.argv[2] ?? process.env.PORT ?? '0';
const wanted = Number.parseInt(requested, 10);
if (!Number.isInteger(wanted) || wanted < 0 || wanted > 65535) {
  console.error(`oidc-provider: not a port: ${requested}`);
  process.exit(2);
}

const server = createServer();
await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(wanted, '127.0.0.1', resolve);
});
const { port } = server.address();
const issuer = `http://127.0.0.1:${port}`;

// A placeholder: redirectUriAllowed below decides which redirect_uris a client accepts.
const registered = ['http://127.0.0.1/auth/oidc/op/callback'];

const client = (id, secret, alg) => ({
  client_id: id,
  client_secret: secret,
  redirect_uris: registered,
  response_types: ['code'],
  grant_types: ['authorization_code'],
  token_endpoint_auth_method: 'client_secret_basic',
  id_token_signed_response_alg: alg,
});

const provider = new Provider(issuer, {
  clients: [
    client('app', 'app-secret-5f0c1d2e3b4a69788796a5b4c3d2e1f0', 'RS256'),
    client('hs256', 'hs256-secret-0a1b2c3d4e5f60718293a4b5c6d7e8f9', 'HS256'),
  ],
  // Fresh keys each start; relying parties find them at the jwks_uri.
  jwks: {
    keys: [
      signingKey('rs256-test', 'rsa', { modulusLength: 2048 }, 'RS256'),
      signingKey('es256-test', 'ec', { namedCurve: 'P-256' }, 'ES256'),
    ],
  },
  enabledJWA: {
    idTokenSigningAlgValues: ['RS256', 'ES256', 'HS256'],
  },
  async findAccount(_ctx, id) {
    return {
      accountId: id,
      async claims() {
        return { sub: id, email: id, email_verified: !id.startsWith('unverified') };
      },
    };
  },
  scopes: ['openid', 'email', 'profile'],
  // `amr` rides on the openid scope: it comes from the session (below), not the account.
  claims: { openid: ['sub', 'amr'], email: ['email', 'email_verified'] },
  // The email claims go in the ID token too, not only at the userinfo endpoint.
  conformIdTokenClaims: false,
  pkce: { required: () => true },
  // The test clients' redirect_uris are a pattern, never omitted.
  allowOmittingSingleRegisteredRedirectUri: false,
  features: {
    devInteractions: { enabled: true },
  },
  cookies: {
    keys: ['oidc-provider-test-cookie-key-0001', 'oidc-provider-test-cookie-key-0002'],
  },
  ttl: {
    IdToken: 60,
    AccessToken: 600,
    AuthorizationCode: 60,
    Interaction: 600,
    Session: 3600,
    Grant: 3600,
  },
  clientBasedCORS: () => false,
  // The default error page imports a web font; this one loads nothing from elsewhere.
  async renderError(ctx, out) {
    ctx.type = 'html';
    const rows = Object.entries(out)
      .map(([key, value]) => `<pre><strong>${escapeHtml(key)}</strong>: ${escapeHtml(value)}</pre>`)
      .join('');
    ctx.body = `<!DOCTYPE html><html><head><meta charset="utf-8"><title>oops! something went wrong</title></head><body><h1>oops! something went wrong</h1>${rows}</body></html>`;
  },
});
provider.proxy = false;

provider.Client.prototype.redirectUriAllowed = function redirectUriAllowed(value) {
  return callbackAllowed(value);
};

// devInteractions finishes the login with `{ login: { accountId } }` only: add the session's
// authentication methods, which the ID token's `amr` carries.
const interactionResult = provider.interactionResult.bind(provider);
provider.interactionResult = (req, res, result, options) => {
  const login = result?.login;
  if (login && typeof login.accountId === 'string' && login.amr === undefined) {
    const amr = login.accountId.includes('+mfa') ? ['pwd', 'mfa'] : ['pwd'];
    result = { ...result, login: { ...login, amr } };
  }
  return interactionResult(req, res, result, options);
};

provider.on('server_error', (_ctx, err) => console.error('oidc-provider: server_error', err));

server.on('request', provider.callback());

process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));

process.stdout.write(`listening ${port}\n`);
