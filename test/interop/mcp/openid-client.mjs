// Runs panva's openid-client (v6) against writ from the generic OAuth side:
// discovery and dynamic client registration of a private_key_jwt client,
// a client_credentials grant (RFC 8707 resource), an RFC 8693 token
// exchange through genericGrantRequest, RFC 7662 introspection and RFC 7009
// revocation.
//
// Environment:
//   WRIT_ISSUER    writ's issuer URL (metadata is discovered from it)
//   WRIT_RESOURCE  the protected resource the tokens are for
//
// Each step is one JSON line on stdout ({step, ...}). The driving test
// answers on stdin, one JSON line each time the script waits:
//   after "registered":  {"subject_token": "<the user's token>"}
//   after "exchanged":   {"next": "introspect"}
import * as client from 'openid-client';
import { createInterface } from 'node:readline';

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set`);
  return v;
};
const say = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const claims = (jwt) => JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url').toString('utf8'));

const input = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
async function told() {
  const { value, done } = await input.next();
  if (done) throw new Error('the driver closed stdin');
  return JSON.parse(value);
}

const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ACCESS_TOKEN = 'urn:ietf:params:oauth:token-type:access_token';

async function main() {
  const issuer = new URL(env('WRIT_ISSUER'));
  const resource = env('WRIT_RESOURCE');

  // The client's key pair: the public half is registered as jwks, the
  // private half signs its client assertions.
  const { publicKey, privateKey } = await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify']);
  const kid = 'interop-key-1';
  const { kty, crv, x, y } = await crypto.subtle.exportKey('jwk', publicKey);

  // dynamicClientRegistration discovers writ's metadata first.
  const config = await client.dynamicClientRegistration(
    issuer,
    {
      client_name: 'writ interop: openid-client',
      redirect_uris: [],
      grant_types: ['client_credentials', TOKEN_EXCHANGE],
      token_endpoint_auth_method: 'private_key_jwt',
      token_endpoint_auth_signing_alg: 'ES256',
      jwks: { keys: [{ kty, crv, x, y, kid, alg: 'ES256', use: 'sig' }] },
      scope: 'tools.call',
    },
    client.PrivateKeyJwt({ key: privateKey, kid }),
    { execute: [client.allowInsecureRequests] },
  );
  const server = config.serverMetadata();
  say({
    step: 'discovered',
    issuer: server.issuer,
    token_endpoint: server.token_endpoint,
    registration_endpoint: server.registration_endpoint,
    introspection_endpoint: server.introspection_endpoint,
    revocation_endpoint: server.revocation_endpoint,
  });
  const registered = config.clientMetadata();
  say({ step: 'registered', client_id: registered.client_id, token_endpoint_auth_method: registered.token_endpoint_auth_method });

  // The agent as itself.
  const own = await client.clientCredentialsGrant(config, { scope: 'tools.call', resource });
  say({ step: 'client_credentials', access_token: own.access_token, token_type: own.token_type, scope: own.scope, claims: claims(own.access_token) });

  // On behalf of the user whose token the driver signs for this client.
  const { subject_token } = await told();
  const exchanged = await client.genericGrantRequest(config, TOKEN_EXCHANGE, {
    subject_token,
    subject_token_type: ACCESS_TOKEN,
    actor_token: own.access_token,
    actor_token_type: ACCESS_TOKEN,
    resource,
    scope: 'tools.call',
  });
  say({
    step: 'exchanged',
    access_token: exchanged.access_token,
    token_type: exchanged.token_type,
    issued_token_type: exchanged.issued_token_type,
    scope: exchanged.scope,
    claims: claims(exchanged.access_token),
  });

  const { next } = await told();
  if (next !== 'introspect') throw new Error(`unexpected instruction ${next}`);
  const before = await client.tokenIntrospection(config, exchanged.access_token);
  say({ step: 'introspected', response: before });
  await client.tokenRevocation(config, exchanged.access_token);
  say({ step: 'revoked' });
  const after = await client.tokenIntrospection(config, exchanged.access_token);
  say({ step: 'introspected_after_revocation', response: after });
  say({ step: 'done' });
}

main()
  .catch((err) => {
    say({ step: 'failed', error: String(err?.message ?? err), code: err?.code, oauth_error: err?.error, description: err?.error_description, status: err?.status });
    process.exitCode = 1;
  })
  .finally(() => process.stdin.destroy());
