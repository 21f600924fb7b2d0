import type * as http from 'node:http';
import type * as https from 'node:https';
import type { AddressInfo } from 'node:net';

type AnyServer = http.Server | https.Server;

/** Starts `server` on an ephemeral port of `host`; resolves to its base URL (`http://127.0.0.1:PORT`). */
export async function listenLocal(server: AnyServer, host = '127.0.0.1'): Promise<string> {
  await new Promise<void>((r) => server.listen(0, host, r));
  const scheme = 'cert' in server || 'setSecureContext' in server ? 'https' : 'http';
  const address = host.includes(':') ? `[${host}]` : host;
  return `${scheme}://${address}:${(server.address() as AddressInfo).port}`;
}

/** Ends every connection (kept-alive ones too) and closes the server: a test's afterAll never waits on a client. */
export async function closeServer(server: AnyServer | undefined): Promise<void> {
  if (!server) return;
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
}
