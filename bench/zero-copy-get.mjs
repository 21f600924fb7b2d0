// A reference design for bench/diag.mjs, not engine code: a plain-http GET read with `net` `onread` straight into
// 4 MiB SharedArrayBuffer blocks (no per-chunk Buffer, no copy, no garbage), each full block hashed (StreamHasher
// worker) while the blocks are written one after the other (libuv pool), at most POOL blocks in flight (the socket
// pauses when none is free).
// Handles only what the bench server sends: HTTP/1.1 200 with Content-Length. No TLS, redirects, resume or timeouts.
import * as fs from 'node:fs';
import * as net from 'node:net';

const BLOCK = 4 << 20;
const POOL = 4;

export function zeroCopyGet(href, file, checksum) {
  const url = new URL(href);
  return new Promise((resolve, reject) => {
    fs.promises.open(file, 'w').then((fh) => {
      const hasher = new checksum.StreamHasher('sha256');
      const free = Array.from({ length: POOL }, () => checksum.allocSharedBuffer(BLOCK));
      let block = free.pop();
      let fill = 0;
      let pos = 0;
      let total = -1;
      let head = Buffer.alloc(0);
      let inflight = 0;
      let paused = false;
      let done = false;
      let lastWrite = Promise.resolve();
      const fail = (err) => {
        if (done) return;
        done = true;
        sock.destroy();
        hasher.destroy();
        fh.close().finally(() => reject(err));
      };
      const finish = async () => {
        if (done || inflight > 0 || total < 0 || pos < total) return;
        done = true;
        sock.destroy();
        await fh.close();
        resolve({ size: pos, digest: await hasher.digest() });
      };
      const flush = () => {
        const b = block;
        const len = fill;
        const at = pos;
        pos += len;
        fill = 0;
        inflight++;
        block = free.pop();
        // Writes one at a time (in order): concurrent pwrite()s to one file contend in the kernel.
        lastWrite = lastWrite.then(() => fh.write(b, 0, len, at));
        Promise.all([lastWrite, hasher.update(b.subarray(0, len))]).then(() => {
          inflight--;
          free.push(b);
          block ??= free.pop();
          if (paused && free.length > 0) {
            paused = false;
            sock.resume();
          }
          finish();
        }, fail);
        // Keep the current block for a read already under way; stop reading while no other is free.
        if (free.length === 0 && !paused) {
          paused = true;
          sock.pause();
        }
      };
      const sock = net.connect({
        host: url.hostname,
        port: Number(url.port || 80),
        onread: {
          buffer: () => {
            if (total < 0) return Buffer.allocUnsafe(16 << 10);
            block ??= checksum.allocSharedBuffer(BLOCK); // a read landed after the pause: rare
            return block.subarray(fill);
          },
          callback: (n, buf) => {
            if (total < 0) {
              head = Buffer.concat([head, buf.subarray(0, n)]);
              const end = head.indexOf('\r\n\r\n');
              if (end < 0) return true;
              const text = head.subarray(0, end).toString('latin1');
              const len = /\r\ncontent-length:\s*(\d+)/i.exec(text);
              if (!/^HTTP\/1\.1 200 /.test(text) || !len) {
                fail(new Error(`unexpected answer: ${text.split('\r\n')[0]}`));
                return false;
              }
              total = Number(len[1]);
              const rest = head.subarray(end + 4);
              rest.copy(block, 0);
              fill = rest.length;
            } else {
              fill += n;
            }
            if (fill === BLOCK || (pos + fill === total && fill > 0)) flush();
            finish();
            return true;
          },
        },
      });
      sock.on('connect', () =>
        sock.write(`GET ${url.pathname}${url.search} HTTP/1.1\r\nHost: ${url.host}\r\n\r\n`),
      );
      sock.on('error', fail);
    }, reject);
  });
}
