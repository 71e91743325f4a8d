// panva's oidc-provider (an OpenID Certified provider) on 127.0.0.1 for
// tests/it/oidc_interop.rs. Configuration comes from the environment:
//   PORT                  port to listen on (the test picks a free one)
//   REDIRECT_URI          the relying party's callback
//   POST_LOGOUT_URI       where the provider may return after logout
//   BACKCHANNEL_URI       the relying party's back-channel logout endpoint
//   CLIENT_ID / CLIENT_SECRET
//   CLIENT_JWKS           optional: the client's public keys (JSON); the
//                         client then authenticates with private_key_jwt
//   MACHINE_CLIENT_ID / MACHINE_CLIENT_SECRET / MACHINE_AUDIENCE
//                         optional: a second client allowed the
//                         client_credentials grant, whose access tokens
//                         are JWTs (RFC 9068) for the resource
//                         MACHINE_AUDIENCE (RFC 8707 resource indicators)
//   GROUPS_OVERAGE        optional: JSON {"oid", "tid", "endpoint"}; the
//                         account is then an Entra user in too many
//                         groups: `oid` and `tid` claims, no `groups`, and
//                         `_claim_names.groups` pointing into
//                         `_claim_sources` (a distributed claim, OIDC Core
//                         5.6.2, which the provider filters by scope)
// The login is scripted: /interaction/:uid signs in the one account
// (alice@acme.com) at once, and consent is implied for this first-party
// client, so a plain HTTP client can complete the flow. Logout keeps the
// provider's own confirmation form (the test posts it).
// Step-up: the provider knows two context classes (ACR_PWD, ACR_MFA) and
// honours `acr_values` like a real IdP doing MFA: a session below the
// requested class is sent through the login again, which then achieves
// the first requested class it knows. (Its ID tokens carry `acr` only when
// `acr_values` asked for one, and never `amr` without a `claims` request.)
// `max_age` is the provider's own. GET /__test/next-login?acr=…&age=…
// makes the next login misbehave: report `acr` whatever was asked, and an
// authentication `age` seconds old.
// Prints one JSON line `{"issuer": …}` on stdout when it is listening.

import http from 'node:http';
import { generateKeyPairSync } from 'node:crypto';
import Provider, { errors, interactionPolicy } from 'oidc-provider';

// stdout carries only the ready line; everything else goes to stderr.
console.log = console.error;
console.info = console.error;

const env = (name) => {
  const v = process.env[name];
  if (!v) {
    console.error(`missing ${name}`);
    process.exit(2);
  }
  return v;
};

const port = Number(env('PORT'));
const issuer = `http://127.0.0.1:${port}`;
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const jwk = { ...privateKey.export({ format: 'jwk' }), kid: 'interop-1', use: 'sig', alg: 'RS256' };

const ACCOUNT = {
  sub: 'alice-sub',
  email: 'alice@acme.com',
  email_verified: true,
  name: 'Alice Example',
  groups: ['Engineering', 'Everyone'],
  // scope `org`: claims only a claim mapping reads
  department: 'R&D',
  employee_id: 4711,
  badges: ['first-aid', 'fire, safety'],
};

if (process.env.GROUPS_OVERAGE) {
  const { oid, tid, endpoint } = JSON.parse(process.env.GROUPS_OVERAGE);
  delete ACCOUNT.groups;
  Object.assign(ACCOUNT, {
    oid,
    tid,
    _claim_names: { groups: 'src1' },
    _claim_sources: { src1: { endpoint } },
  });
}

const ACR_PWD = 'urn:portcullis:test:pwd';
const ACR_MFA = 'urn:portcullis:test:mfa';
const ACRS = [ACR_PWD, ACR_MFA];

// The next login's misbehaviour, set by /__test/next-login.
let nextLogin = {};

const requestedAcrs = (oidc) => (oidc.params.acr_values || '').split(' ').filter(Boolean);

const policy = interactionPolicy.base();
policy.get('login').checks.add(new interactionPolicy.Check(
  'acr_values_unmet',
  'the session is below the requested authentication context class',
  (ctx) => {
    const requested = requestedAcrs(ctx.oidc);
    if (requested.length && !requested.includes(ctx.oidc.acr) && !ctx.oidc.result?.login) {
      return interactionPolicy.Check.REQUEST_PROMPT;
    }
    return interactionPolicy.Check.NO_NEED_TO_PROMPT;
  },
));

const clientAuth = process.env.CLIENT_JWKS
  ? {
    token_endpoint_auth_method: 'private_key_jwt',
    token_endpoint_auth_signing_alg: 'ES256',
    jwks: JSON.parse(process.env.CLIENT_JWKS),
  }
  : { token_endpoint_auth_method: 'client_secret_basic', client_secret: env('CLIENT_SECRET') };

// Machine access: client_credentials with JWT access tokens for one API.
const machineAudience = process.env.MACHINE_AUDIENCE;
const machineClients = machineAudience
  ? [{
    client_id: env('MACHINE_CLIENT_ID'),
    client_secret: env('MACHINE_CLIENT_SECRET'),
    token_endpoint_auth_method: 'client_secret_basic',
    grant_types: ['client_credentials'],
    redirect_uris: [],
    response_types: [],
  }]
  : [];

const provider = new Provider(issuer, {
  clients: [
    ...machineClients,
    {
      client_id: env('CLIENT_ID'),
      redirect_uris: [env('REDIRECT_URI')],
      post_logout_redirect_uris: [env('POST_LOGOUT_URI')],
      backchannel_logout_uri: env('BACKCHANNEL_URI'),
      backchannel_logout_session_required: true,
      grant_types: ['authorization_code'],
      // every ID token says when the user authenticated (step-up's max_age)
      require_auth_time: true,
      response_types: ['code'],
      ...clientAuth,
    },
  ],
  jwks: { keys: [jwk] },
  acrValues: ACRS,
  interactions: { policy },
  cookies: { keys: ['interop-cookie-key-not-secret'] },
  scopes: ['openid', 'email', 'profile', 'groups', 'org'],
  claims: {
    // the ID token's acr and auth_time (step-up); the provider includes
    // them when asked for (acr_values, max_age, require_auth_time)
    acr: null,
    auth_time: null,
    // oid, tid: only an Entra-shaped account (GROUPS_OVERAGE) has them
    openid: ['sub', 'oid', 'tid'],
    email: ['email', 'email_verified'],
    profile: ['name'],
    groups: ['groups'],
    org: ['department', 'employee_id', 'badges'],
  },
  features: {
    devInteractions: { enabled: false },
    rpInitiatedLogout: { enabled: true },
    backchannelLogout: { enabled: true },
    clientCredentials: { enabled: Boolean(machineAudience) },
    resourceIndicators: {
      enabled: Boolean(machineAudience),
      // Only the client_credentials grant gets the API by default; the
      // browser login keeps its userinfo-bound access token.
      defaultResource(ctx, client, oneOf) {
        if (oneOf) return oneOf;
        return ctx.oidc.params?.grant_type === 'client_credentials' ? machineAudience : undefined;
      },
      useGrantedResource: () => false,
      getResourceServerInfo(ctx, resourceIndicator) {
        if (resourceIndicator !== machineAudience) {
          throw new errors.InvalidTarget();
        }
        return {
          scope: 'reports:read reports:write',
          audience: machineAudience,
          accessTokenTTL: 300,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'RS256' } },
        };
      },
    },
  },
  // The machine client's app roles, as a claim of its access tokens.
  extraTokenClaims(ctx, token) {
    if (token.kind === 'ClientCredentials') return { roles: ['Engineering'] };
    return undefined;
  },
  // The relying party is on loopback, which the provider's SSRF guard
  // refuses for outgoing requests (back-channel logout); drop the guard's
  // dispatcher for this test-only instance.
  fetch(url, options) {
    const { dispatcher, ...rest } = options;
    return globalThis.fetch(url, rest);
  },
  async findAccount(ctx, id) {
    if (id !== ACCOUNT.sub) return undefined;
    return { accountId: id, async claims() { return { ...ACCOUNT }; } };
  },
  // First-party client: consent is implied.
  async loadExistingGrant(ctx) {
    const grantId = ctx.oidc.result?.consent?.grantId
      || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) return ctx.oidc.provider.Grant.find(grantId);
    const grant = new ctx.oidc.provider.Grant({
      clientId: ctx.oidc.client.clientId,
      accountId: ctx.oidc.session.accountId,
    });
    grant.addOIDCScope('openid email profile groups org');
    await grant.save();
    return grant;
  },
});

// Surface what the test can't see: back-channel deliveries and errors.
provider.on('backchannel.error', (ctx, err, client) => console.error('op: backchannel.error', client.clientId, err, err.cause));

provider.on('server_error', (ctx, err) => console.error('op: server_error', err));

const callback = provider.callback();
const server = http.createServer(async (req, res) => {
  if (req.url.startsWith('/__test/next-login')) {
    const q = new URL(req.url, issuer).searchParams;
    nextLogin = { acr: q.get('acr') || undefined, age: Number(q.get('age') || 0) };
    res.end('ok');
    return;
  }
  if (req.url.startsWith('/interaction/')) {
    try {
      const details = await provider.interactionDetails(req, res);
      if (details.prompt.name !== 'login') {
        res.statusCode = 400;
        res.end(`unexpected prompt ${details.prompt.name}`);
        return;
      }
      const requested = (details.params.acr_values || '').split(' ').filter((a) => ACRS.includes(a));
      const acr = nextLogin.acr || requested[0] || ACR_PWD;
      const amr = acr === ACR_MFA ? ['pwd', 'otp'] : ['pwd'];
      const ts = Math.floor(Date.now() / 1000) - (nextLogin.age || 0);
      nextLogin = {};
      await provider.interactionFinished(req, res, {
        login: { accountId: ACCOUNT.sub, acr, amr, ts },
      }, {
        mergeWithLastSubmission: false,
      });
    } catch (err) {
      res.statusCode = 500;
      res.end(String(err));
    }
    return;
  }
  callback(req, res);
});

server.listen(port, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ issuer })}\n`);
});

// The test harness kills us; also stop if it vanishes.
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
