// A local OpenID provider for development and end-to-end tests, built on the certified `oidc-provider` package.
//
// Anyone can sign in by typing any name (any password): the name becomes the subject (`sub`). Names decide the
// claims, so test accounts are easy to make:
//   - `unverified…`  → email_verified is false
//   - `minimal…`     → no name, given_name or picture
//   - anything else  → name, given_name, family_name, a picture served by this provider, verified email
// and one decides consent:
//   - `partial…`     → at the consent step, declines every requested scope whose name ends in `.write` and grants
//                      the rest; the grant records the declined ones as rejected, so consent is not asked again
//                      for them and token responses list only the granted scopes in `scope`
//
// Scopes: openid, offline_access, email, profile, and `api.read` / `api.write`, which stand in for Google API scopes.
//
// Environment:
//   DEV_OIDC_PORT          port on 127.0.0.1 (default 4400; 0 picks a free one)
//   DEV_OIDC_HOST          host to bind (default 127.0.0.1)
//   DEV_OIDC_CLIENT_ID     the pre-registered client (default signin-dev)
//   DEV_OIDC_CLIENT_SECRET its secret (default dev-secret-not-for-production)
//   DEV_OIDC_REDIRECT_URIS comma-separated redirect URIs of that client
//                          (default http://127.0.0.1:3000/login/callback,http://localhost:3000/login/callback)
//   DEV_OIDC_BACKCHANNEL_LOGOUT_URI   when set, the pre-registered client's back-channel logout URI
//   DEV_OIDC_POST_LOGOUT_REDIRECT_URIS comma-separated post-logout redirect URIs of that client
//   DEV_OIDC_ISSUER_FILE   when set, the issuer URL is written there once the server listens
//   DEV_OIDC_PKCE_REQUIRED "true" (default): every client must use PKCE; "false": PKCE is optional (still checked
//                          when a client sends it). Only scripts/bench turns it off, for the tutorial app baseline.
//
// Dynamic client registration (`POST /reg`) is open so that each test can register a client for its own port.
// Back-channel logout, RP-initiated logout (`/session/end`) and token revocation (`/token/revocation`) are on.
//
// Refresh tokens:
//   - The pre-registered client may use the `refresh_token` grant; a registered client asks for it with
//     `"grant_types": ["authorization_code", "refresh_token"]`.
//   - A refresh token is issued when `offline_access` was granted. The package keeps `offline_access` in an
//     authorization request only together with `prompt=consent` (OpenID Connect Core §11); otherwise it drops it.
//   - Refresh tokens rotate: each refresh consumes the one presented and answers a new one. Presenting a consumed
//     refresh token again answers `invalid_grant` and revokes the whole grant (every token issued under it).
//   - A refresh answers a new access token, the new refresh token, the refresh token's own `scope` (what was
//     granted when it was issued, not scopes granted since; or the narrower `scope` the refresh asked for) and a
//     new ID token for the same `sub`.
//   - Revoking a refresh token at `/token/revocation` (RFC 7009, with the client's credentials) revokes it and the
//     tokens issued under its grant; a later refresh answers `invalid_grant`. Revoking an access token there also
//     revokes the refresh tokens of its grant (the package's behaviour).
//   - Client metadata `access_token_ttl` (integer seconds, 1 to 86400; e.g. `"access_token_ttl": 3` at `POST /reg`)
//     sets how long that client's access tokens live. Without it they live 3600 s.
//
// For tests:
//   GET /_test/token-calls?client_id=<id>
//     → {"refresh": n, "refresh_failed": m, "authorization_code": k}: the token-endpoint calls naming that client
//       since the provider started: successful refreshes, failed refreshes (any error, a failed client
//       authentication included) and successful code redemptions. An unknown client answers zeros.
//   POST /_test/revoke-access?client_id=<id>&account=<name>
//     → {"revoked": n}: what a person does in their account settings ("remove this app's access"): every grant
//       of that account to that client ends, with its access and refresh tokens; the client's next refresh gets
//       invalid_grant.
import { createServer } from 'node:http';
import { writeFileSync } from 'node:fs';
import Provider, { errors } from 'oidc-provider';

const host = process.env.DEV_OIDC_HOST || '127.0.0.1';
const port = Number(process.env.DEV_OIDC_PORT ?? 4400);
const clientId = process.env.DEV_OIDC_CLIENT_ID || 'signin-dev';
const clientSecret = process.env.DEV_OIDC_CLIENT_SECRET || 'dev-secret-not-for-production';
const redirectUris = (process.env.DEV_OIDC_REDIRECT_URIS ||
  'http://127.0.0.1:3000/login/callback,http://localhost:3000/login/callback')
  .split(',').map((s) => s.trim()).filter(Boolean);
const backchannelLogoutUri = (process.env.DEV_OIDC_BACKCHANNEL_LOGOUT_URI || '').trim();
const postLogoutRedirectUris = (process.env.DEV_OIDC_POST_LOGOUT_REDIRECT_URIS || '')
  .split(',').map((s) => s.trim()).filter(Boolean);
const pkceRequiredSetting = (process.env.DEV_OIDC_PKCE_REQUIRED || 'true').trim().toLowerCase();
if (pkceRequiredSetting !== 'true' && pkceRequiredSetting !== 'false') {
  throw new Error(`DEV_OIDC_PKCE_REQUIRED must be "true" or "false", not ${JSON.stringify(pkceRequiredSetting)}`);
}
const pkceRequired = pkceRequiredSetting === 'true';

const server = createServer();
await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(port, host, resolve);
});
const issuer = `http://${host}:${server.address().port}`;

// The package's own development store is an LRU of 1,000 objects (about 8 per sign-in), so a burst of logins evicts
// sign-ins still in progress. This store keeps every object until it expires.
class MemoryAdapter {
  static entries = new Map();

  static get(key) {
    const entry = MemoryAdapter.entries.get(key);
    if (!entry) return undefined;
    if (entry.expiresAt && entry.expiresAt < Date.now()) {
      MemoryAdapter.entries.delete(key);
      return undefined;
    }
    return entry.value;
  }

  static set(key, value, expiresIn) {
    MemoryAdapter.entries.set(key, { value, expiresAt: expiresIn ? Date.now() + expiresIn * 1000 : 0 });
  }

  static sweep() {
    const now = Date.now();
    for (const [key, entry] of MemoryAdapter.entries) {
      if (entry.expiresAt && entry.expiresAt < now) MemoryAdapter.entries.delete(key);
    }
  }

  constructor(name) {
    this.name = name;
  }

  key(id) {
    return `${this.name}:${id}`;
  }

  async upsert(id, payload, expiresIn) {
    MemoryAdapter.set(this.key(id), payload, expiresIn);
    if (payload.grantId) {
      // The list of a grant's tokens lives as long as its longest-lived token, so that revoking the grant deletes
      // every token of it, also when the token saved last was a short-lived access token.
      const grantKey = `grant:${payload.grantId}`;
      const members = MemoryAdapter.get(grantKey) || [];
      const key = this.key(id);
      if (!members.includes(key)) members.push(key);
      const previous = MemoryAdapter.entries.get(grantKey);
      const expiresAt = expiresIn ? Date.now() + expiresIn * 1000 : 0;
      const keepUntil = !previous ? expiresAt
        : (!previous.expiresAt || !expiresAt ? 0 : Math.max(previous.expiresAt, expiresAt));
      MemoryAdapter.entries.set(grantKey, { value: members, expiresAt: keepUntil });
    }
    if (payload.uid) MemoryAdapter.set(`sessionUid:${payload.uid}`, id, expiresIn);
    if (payload.userCode) MemoryAdapter.set(`userCode:${payload.userCode}`, id, expiresIn);
  }

  async find(id) {
    return MemoryAdapter.get(this.key(id));
  }

  async findByUid(uid) {
    const id = MemoryAdapter.get(`sessionUid:${uid}`);
    return id ? this.find(id) : undefined;
  }

  async findByUserCode(userCode) {
    const id = MemoryAdapter.get(`userCode:${userCode}`);
    return id ? this.find(id) : undefined;
  }

  async consume(id) {
    const payload = await this.find(id);
    if (payload) payload.consumed = Math.floor(Date.now() / 1000);
  }

  async destroy(id) {
    MemoryAdapter.entries.delete(this.key(id));
  }

  async revokeByGrantId(grantId) {
    const grantKey = `grant:${grantId}`;
    for (const key of MemoryAdapter.get(grantKey) || []) MemoryAdapter.entries.delete(key);
    MemoryAdapter.entries.delete(grantKey);
  }
}
setInterval(MemoryAdapter.sweep, 60_000).unref();

const PALETTE = ['#1a73e8', '#188038', '#d93025', '#f9ab00', '#9334e6', '#e37400', '#12b5cb'];

function titleCase(s) {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

function claimsFor(login) {
  const local = login.toLowerCase().replace(/[^a-z0-9._+-]/g, '') || 'user';
  const claims = { sub: login, email: `${local}@example.com`, email_verified: !login.startsWith('unverified') };
  if (!login.startsWith('minimal')) {
    const given = titleCase(local.split(/[._+-]/)[0] || local);
    claims.given_name = given;
    claims.family_name = 'Example';
    claims.name = `${given} Example`;
    claims.picture = `${issuer}/avatars/${encodeURIComponent(local)}.svg`;
  }
  return claims;
}

const configuration = {
  adapter: MemoryAdapter,
  clients: [{
    client_id: clientId,
    client_secret: clientSecret,
    redirect_uris: redirectUris,
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
    ...(backchannelLogoutUri
      ? { backchannel_logout_uri: backchannelLogoutUri, backchannel_logout_session_required: true }
      : {}),
    post_logout_redirect_uris: postLogoutRedirectUris,
  }],
  async findAccount(ctx, id) {
    return { accountId: id, async claims() { return claimsFor(id); } };
  },
  scopes: ['openid', 'offline_access', 'email', 'profile', 'api.read', 'api.write'],
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'given_name', 'family_name', 'picture'],
  },
  // Google puts the profile claims in the ID token; do the same.
  conformIdTokenClaims: false,
  features: {
    devInteractions: { enabled: true },
    registration: { enabled: true },
    // Sign-out at the provider reaches the apps: a logout token to each client's `backchannel_logout_uri`.
    backchannelLogout: { enabled: true },
    // `revocation_endpoint`, for apps that revoke their tokens at sign-out.
    revocation: { enabled: true },
  },
  pkce: { required: () => pkceRequired },
  // Per-client access token lifetime, for tests that wait for an access token to expire.
  extraClientMetadata: {
    properties: ['access_token_ttl'],
    validator(ctx, key, value) {
      if (key !== 'access_token_ttl' || value === undefined) return;
      if (!Number.isInteger(value) || value < 1 || value > 86400) {
        throw new errors.InvalidClientMetadata('access_token_ttl must be an integer number of seconds from 1 to 86400');
      }
    },
  },
  // Every refresh consumes the refresh token presented and issues a new one.
  rotateRefreshToken: true,
  // The package refuses outgoing requests to special-use addresses (SSRF protection). This provider and the apps it
  // serves all run on loopback, so requests to a loopback URL (back-channel logout tokens) go without that check;
  // any other keeps it.
  fetch(url, options) {
    const { hostname } = new URL(url);
    if (hostname === '127.0.0.1' || hostname === 'localhost' || hostname === '[::1]') delete options.dispatcher;
    return globalThis.fetch(url, options);
  },
  cookies: { keys: ['dev-only-cookie-key-change-me'] },
  ttl: {
    AuthorizationCode: 60,
    IdToken: 3600,
    AccessToken: (ctx, token, client) => client?.access_token_ttl ?? 3600,
    Interaction: 600,
    Session: 86400,
    Grant: 86400,
  },
};

const provider = new Provider(issuer, configuration);

// Accounts named `partial…` decline the `.write` scopes at consent. The development consent page grants what is
// missing with `grant.addOIDCScope`; for those accounts the `.write` scopes go to `grant.rejectOIDCScope` instead.
// (`rejectOIDCScope` calls `addOIDCScope` on the grant's plain `rejected` object, which passes straight through.)
const addOIDCScope = provider.Grant.prototype.addOIDCScope;
provider.Grant.prototype.addOIDCScope = function addOIDCScopeUnlessDeclined(scope) {
  if (!(this instanceof provider.Grant) || !String(this.accountId ?? '').startsWith('partial')) {
    return addOIDCScope.call(this, scope);
  }
  let names;
  if (scope instanceof Set || Array.isArray(scope)) names = [...scope];
  else if (typeof scope === 'string') names = scope.split(' ');
  else return addOIDCScope.call(this, scope);
  names = names.filter(Boolean);
  const declined = names.filter((name) => name.endsWith('.write'));
  const granted = names.filter((name) => !name.endsWith('.write'));
  if (granted.length) addOIDCScope.call(this, granted.join(' '));
  if (declined.length) this.rejectOIDCScope(declined.join(' '));
  return undefined;
};

// Token-endpoint calls per client and grant type, for `GET /_test/token-calls`.
const tokenCalls = new Map();
function countTokenCall(ctx, field) {
  const clientId = ctx.oidc?.client?.clientId;
  if (!clientId) return;
  const counts = tokenCalls.get(clientId) || { refresh: 0, refresh_failed: 0, authorization_code: 0 };
  counts[field] += 1;
  tokenCalls.set(clientId, counts);
}
provider.on('grant.success', (ctx) => {
  const grantType = ctx.oidc.params?.grant_type;
  if (grantType === 'refresh_token') countTokenCall(ctx, 'refresh');
  else if (grantType === 'authorization_code') countTokenCall(ctx, 'authorization_code');
});
function countFailedRefresh(ctx) {
  if (ctx.oidc?.route === 'token' && ctx.oidc.params?.grant_type === 'refresh_token') {
    countTokenCall(ctx, 'refresh_failed');
  }
}
provider.on('grant.error', countFailedRefresh);
provider.on('server_error', countFailedRefresh);

provider.use(async (ctx, next) => {
  if (ctx.path !== '/_test/token-calls') return next();
  if (ctx.method !== 'GET') {
    ctx.status = 405;
    return undefined;
  }
  const clientId = ctx.query.client_id;
  if (typeof clientId !== 'string' || !clientId) {
    ctx.status = 400;
    ctx.body = { error: 'invalid_request', error_description: 'client_id is required' };
    return undefined;
  }
  ctx.set('Cache-Control', 'no-store');
  ctx.body = tokenCalls.get(clientId) || { refresh: 0, refresh_failed: 0, authorization_code: 0 };
  return undefined;
});

provider.use(async (ctx, next) => {
  if (ctx.path !== '/_test/revoke-access') return next();
  if (ctx.method !== 'POST') {
    ctx.status = 405;
    return undefined;
  }
  const { client_id: client, account } = ctx.query;
  if (typeof client !== 'string' || !client || typeof account !== 'string' || !account) {
    ctx.status = 400;
    ctx.body = { error: 'invalid_request', error_description: 'client_id and account are required' };
    return undefined;
  }
  const grants = new MemoryAdapter('Grant');
  let revoked = 0;
  for (const [key, entry] of [...MemoryAdapter.entries]) {
    if (!key.startsWith('Grant:')) continue;
    const grant = entry.value;
    if (grant?.accountId !== account || grant?.clientId !== client) continue;
    const grantId = key.slice('Grant:'.length);
    await grants.revokeByGrantId(grantId);
    await grants.destroy(grantId);
    revoked += 1;
  }
  ctx.set('Cache-Control', 'no-store');
  ctx.body = { revoked };
  return undefined;
});

// Profile pictures for the development accounts, so no page needs another host.
provider.use(async (ctx, next) => {
  const m = /^\/avatars\/([a-z0-9._+-]{1,64})\.svg$/.exec(ctx.path);
  if (!m || ctx.method !== 'GET') return next();
  const name = m[1];
  const colour = PALETTE[[...name].reduce((a, c) => a + c.charCodeAt(0), 0) % PALETTE.length];
  ctx.type = 'image/svg+xml';
  ctx.set('Cache-Control', 'public, max-age=3600');
  ctx.set('Cross-Origin-Resource-Policy', 'cross-origin');
  ctx.body = `<svg xmlns="http://www.w3.org/2000/svg" width="96" height="96" viewBox="0 0 96 96">`
    + `<rect width="96" height="96" fill="${colour}"/>`
    + `<text x="48" y="62" font-family="sans-serif" font-size="44" fill="#fff" text-anchor="middle">`
    + `${name.charAt(0).toUpperCase()}</text></svg>`;
});

// The built-in development pages import a web font from a third-party host; this machine and the tests want no
// request to leave 127.0.0.1, so drop that line.
provider.use(async (ctx, next) => {
  await next();
  if (ctx.path.startsWith('/interaction/') && typeof ctx.body === 'string') {
    ctx.body = ctx.body.replace(/@import url\(https:[^)]*\);?/g, '');
  }
});

// Say what happened to each back-channel logout, for the tests' logs.
provider.on('backchannel.success', (ctx, client) => console.log(`back-channel logout sent to ${client.clientId}`));
provider.on('backchannel.error', (ctx, err, client) => console.log(`back-channel logout to ${client.clientId} failed: ${err}${err.cause ? ` (${err.cause.code || err.cause})` : ""}`));

server.on('request', provider.callback());

if (process.env.DEV_OIDC_ISSUER_FILE) writeFileSync(process.env.DEV_OIDC_ISSUER_FILE, issuer);
console.log(`development OpenID provider listening; issuer ${issuer}`);
console.log(`  client_id=${clientId} redirect_uris=${redirectUris.join(' ')} pkce_required=${pkceRequired}`);

for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => server.close(() => process.exit(0)));
