// Runs the CIBA poll flow of panva's openid-client (v6) against writ.
//
// Environment:
//   WRIT_ISSUER         writ's issuer URL (metadata is discovered from it)
//   WRIT_SECRET_CLIENT  client_id of a client_secret_basic client
//   WRIT_SECRET         that client's secret
//   WRIT_JWT_CLIENT     client_id of a private_key_jwt client
//   WRIT_JWT_KEY        that client's private key, a JWK (JSON)
//
// Two runs: "approve" (private_key_jwt, login_hint user-approve) and
// "deny" (client_secret_basic, login_hint user-deny). Each step is one JSON
// line on stdout; the driving test decides the request once it sees the
// run's first authorization_pending.
import * as client from 'openid-client';

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set`);
  return v;
};
const say = (o) => process.stdout.write(JSON.stringify(o) + '\n');

// Observe token endpoint answers without changing them, so the driver
// learns when a request is pending.
function observingFetch(run) {
  let told = false;
  return async (url, options) => {
    const res = await fetch(url, options);
    if (!told && String(url).endsWith('/token') && res.status === 400) {
      const body = await res.clone().json();
      if (body.error === 'authorization_pending') {
        told = true;
        say({ run, step: 'pending' });
      }
    }
    return res;
  };
}

async function configure(run, clientId, auth) {
  const config = await client.discovery(new URL(env('WRIT_ISSUER')), clientId, undefined, auth, {
    execute: [client.allowInsecureRequests],
  });
  config[client.customFetch] = observingFetch(run);
  const m = config.serverMetadata();
  if (!m.supportsBackchannelAuthentication?.() && !m.backchannel_authentication_endpoint) {
    throw new Error('writ does not advertise a backchannel authentication endpoint');
  }
  return config;
}

const details = [{ type: 'payment_initiation', creditor: 'ACME', amount: { currency: 'EUR', value: '120.00' } }];

async function approveRun() {
  const jwk = JSON.parse(env('WRIT_JWT_KEY'));
  const key = await crypto.subtle.importKey('jwk', jwk, { name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign']);
  const config = await configure('approve', env('WRIT_JWT_CLIENT'), client.PrivateKeyJwt({ key, kid: jwk.kid }));
  const started = await client.initiateBackchannelAuthentication(config, {
    scope: 'openid payments',
    login_hint: 'user-approve',
    binding_message: 'Refund 120 EUR to ACME?',
    authorization_details: JSON.stringify(details),
  });
  say({ run: 'approve', step: 'initiated', auth_req_id: started.auth_req_id, expires_in: started.expires_in, interval: started.interval });
  const tokens = await client.pollBackchannelAuthenticationGrant(config, started);
  say({
    run: 'approve',
    step: 'token',
    auth_req_id: started.auth_req_id,
    access_token: tokens.access_token,
    token_type: tokens.token_type,
    expires_in: tokens.expiresIn(),
    authorization_details: tokens.authorization_details,
  });
}

async function denyRun() {
  const config = await configure('deny', env('WRIT_SECRET_CLIENT'), client.ClientSecretBasic(env('WRIT_SECRET')));
  const started = await client.initiateBackchannelAuthentication(config, {
    scope: 'openid',
    login_hint: 'user-deny',
    binding_message: 'Delete the repository?',
  });
  say({ run: 'deny', step: 'initiated', auth_req_id: started.auth_req_id });
  try {
    await client.pollBackchannelAuthenticationGrant(config, started);
    say({ run: 'deny', step: 'token' });
  } catch (err) {
    say({ run: 'deny', step: 'error', auth_req_id: started.auth_req_id, error: err.error ?? String(err) });
  }
}

try {
  await approveRun();
  await denyRun();
  say({ step: 'done' });
} catch (err) {
  say({ step: 'failed', error: String(err?.stack ?? err) });
  process.exitCode = 1;
}
