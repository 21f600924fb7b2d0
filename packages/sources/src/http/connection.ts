import * as net from 'node:net';
import type * as Tls from 'node:tls';
import { ImageDownloadFailed } from '@imagecache/errors';
import type { ConnectSettings } from './dispatchers';
import { pinnedLookup, type PinnedAddress } from './redirect-policy';

/** A socket being set up: `ready` is the event after which a request may be written. */
export interface OpenedSocket {
  socket: net.Socket;
  ready: 'connect' | 'secureConnect';
}

/**
 * Opens a connection to `url`'s origin (TLS for https, with the option set's CA and checks; ALPN http/1.1). On
 * plain http, `onread` lets the caller choose each read's buffer (download-exchange.ts reads into its blocks).
 */
export function openSocket(
  url: URL,
  settings: ConnectSettings,
  onread?: net.OnReadOpts,
  pin?: PinnedAddress,
): OpenedSocket {
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  const https = url.protocol === 'https:';
  const port = Number(url.port || (https ? 443 : 80));
  // A checked redirect target is reached at the address that was checked (redirect-policy.ts).
  const lookup = pin ? { lookup: pinnedLookup(pin) } : {};
  const socket = https
    ? tlsModule().connect({
        host,
        port,
        ...lookup,
        ...(net.isIP(host) ? {} : { servername: host }),
        ...settings.tls,
        ALPNProtocols: ['http/1.1'],
      })
    : net.connect({ host, port, ...lookup, ...(onread ? { onread } : {}) });
  socket.setNoDelay(true);
  return { socket, ready: https ? 'secureConnect' : 'connect' };
}

/** node:tls (and the crypto bindings behind it), loaded by the first https connection: plain http never needs it. */
function tlsModule(): typeof Tls {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require('node:tls') as typeof Tls;
}

const LINE_BREAK = /[\r\n\0]/;

/** The head of a request: request line, Host, the caller's headers (checked: no line breaks), a blank line. */
export function requestHead(
  method: string,
  url: URL,
  headers: Record<string, string>,
  extra: string[],
  fail: (message: string) => ImageDownloadFailed,
): string {
  let head = `${method} ${url.pathname}${url.search} HTTP/1.1\r\nhost: ${url.host}\r\n`;
  for (const name of Object.keys(headers)) {
    const value = headers[name]!;
    const n = name.toLowerCase();
    if (n === 'host' || n === 'connection') continue;
    // A value from a server (an ETag sent back in If-Range) must not split the request.
    if (LINE_BREAK.test(name) || LINE_BREAK.test(value)) throw fail('a header value holds a line break');
    head += `${name}: ${value}\r\n`;
  }
  for (const line of extra) head += `${line}\r\n`;
  return `${head}\r\n`;
}

/** An error with the code the error mapping knows (transfer-errors.ts). */
export function coded(message: string, code: string): Error & { code: string } {
  return Object.assign(new Error(message), { code });
}
