// Runs the official MCP TypeScript SDK's client against an MCP server that
// writ protects, with the SDK's own OAuth code doing all the work: the first
// request is refused with 401 and a resource_metadata URL, the SDK fetches
// the protected-resource metadata, then writ's authorization-server
// metadata, registers itself (RFC 7591), gets a client_credentials token
// (RFC 8707 resource included) and retries.
//
// Environment:
//   WRIT_MCP_URL    the MCP endpoint (the proxy in front of the MCP server)
//   WRIT_MCP_STATE  a file: written with the client information and tokens
//                   after a run, read before one (a second run reuses them)
//   WRIT_MCP_TEXT   the text the echo tool is called with
//
// It prints one JSON line: {client_id, scope, tool_result, errors} on
// success, {error, status, client_id} on failure.
import { readFile, writeFile } from 'node:fs/promises';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set`);
  return v;
};
const say = (o) => process.stdout.write(JSON.stringify(o) + '\n');

// A client_credentials provider that starts with no client information, so
// the SDK registers it dynamically. The SDK's own ClientCredentialsProvider
// needs a client_id and secret up front; this one has the same shape
// (no redirect URL, prepareTokenRequest for the grant) but keeps what the
// SDK hands it.
class RegisteringClientCredentialsProvider {
  constructor(state) {
    this.state = state;
  }

  get redirectUrl() {
    return undefined;
  }

  get clientMetadata() {
    return {
      client_name: 'writ interop: MCP TypeScript SDK',
      redirect_uris: [],
      grant_types: ['client_credentials'],
      token_endpoint_auth_method: 'client_secret_basic',
    };
  }

  clientInformation() {
    return this.state.client;
  }

  saveClientInformation(info) {
    this.state.client = info;
  }

  tokens() {
    return this.state.tokens;
  }

  saveTokens(tokens) {
    this.state.tokens = tokens;
  }

  redirectToAuthorization() {
    throw new Error('redirectToAuthorization is not used for the client_credentials grant');
  }

  saveCodeVerifier() {}

  codeVerifier() {
    throw new Error('codeVerifier is not used for the client_credentials grant');
  }

  // The SDK passes the client metadata's scope, which this client leaves to
  // the server; it asks for the scope it was registered with.
  prepareTokenRequest(scope) {
    const params = new URLSearchParams({ grant_type: 'client_credentials' });
    const s = scope ?? this.state.client?.scope;
    if (s) params.set('scope', s);
    return params;
  }
}

async function main() {
  const statePath = env('WRIT_MCP_STATE');
  let state = {};
  try {
    state = JSON.parse(await readFile(statePath, 'utf8'));
  } catch (err) {
    if (err.code !== 'ENOENT') throw err;
  }
  const provider = new RegisteringClientCredentialsProvider(state);
  const transport = new StreamableHTTPClientTransport(new URL(env('WRIT_MCP_URL')), { authProvider: provider });
  const client = new Client({ name: 'writ-interop', version: '1.0.0' });
  // Errors the SDK reports without failing the call (for example the
  // optional GET stream, which the route does not allow).
  const errors = [];
  client.onerror = (err) => errors.push(String(err?.message ?? err));
  try {
    await client.connect(transport);
    const result = await client.callTool({ name: 'echo', arguments: { text: env('WRIT_MCP_TEXT') } });
    say({
      client_id: state.client?.client_id,
      scope: state.client?.scope,
      token_type: state.tokens?.token_type,
      tool_result: result,
      errors,
    });
  } catch (err) {
    say({ error: String(err?.message ?? err), status: err?.code, client_id: state.client?.client_id });
  } finally {
    await writeFile(statePath, JSON.stringify(state), { mode: 0o600 });
    await client.close().catch(() => {});
  }
}

main().catch((err) => {
  say({ error: String(err?.stack ?? err) });
  process.exit(1);
});
