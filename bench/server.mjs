#!/usr/bin/env node
// The benchmark's upstream: a static file server in a process of its own (it must not share an event loop with
// the engine under test). Serves every file of ROOT at /NAME with Content-Length and Last-Modified, HEAD and GET
// (Range too), streaming the file in 4 MiB reads straight into the socket; counts GETs per path.
//
//   node bench/server.mjs ROOT [PORT]     prints `listening PORT` once ready
//   GET /_stats  -> {"gets":{"/a.bin":1},"heads":{...},"cpu":{user,system} µs}      POST|GET /_reset  -> zeroes the counts
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';

const root = path.resolve(process.argv[2] ?? '.');
const port = Number(process.argv[3] ?? 0);
const CHUNK = 4 << 20;
const POOL = 4;

let gets = {};
let heads = {};
const bump = (m, k) => (m[k] = (m[k] ?? 0) + 1);

const server = http.createServer({ highWaterMark: CHUNK, keepAliveTimeout: 60_000 }, (req, res) => {
  const url = new URL(req.url, 'http://x');
  if (url.pathname === '/_stats') return json(res, { gets, heads, cpu: process.cpuUsage() });
  if (url.pathname === '/_reset') {
    gets = {};
    heads = {};
    return json(res, { ok: true });
  }
  const name = decodeURIComponent(url.pathname.slice(1));
  if (!name || name.includes('/') || name.startsWith('.')) return end(res, 404);
  const file = path.join(root, name);
  let st;
  try {
    st = fs.statSync(file);
  } catch {
    return end(res, 404);
  }
  if (!st.isFile()) return end(res, 404);
  const headers = {
    'content-type': 'application/octet-stream',
    'last-modified': st.mtime.toUTCString(),
    'accept-ranges': 'bytes',
  };
  if (req.method === 'HEAD') {
    bump(heads, url.pathname);
    res.writeHead(200, { ...headers, 'content-length': String(st.size) });
    return res.end();
  }
  if (req.method !== 'GET') return end(res, 405);
  bump(gets, url.pathname);
  let start = 0;
  let stop = st.size; // exclusive
  let status = 200;
  const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
  if (range) {
    start = Number(range[1]);
    if (range[2]) stop = Math.min(st.size, Number(range[2]) + 1);
    if (start >= st.size) {
      res.writeHead(416, { 'content-range': `bytes */${st.size}` });
      return res.end();
    }
    status = 206;
    headers['content-range'] = `bytes ${start}-${stop - 1}/${st.size}`;
  }
  res.writeHead(status, { ...headers, 'content-length': String(stop - start) });
  sendFile(file, start, stop, res).catch(() => res.destroy());
});

/**
 * Reads ahead into a few 4 MiB buffers while earlier ones are being written to the socket: the next read runs on
 * the libuv pool while the socket drains. Honours backpressure.
 */
async function sendFile(file, start, stop, res) {
  const fh = await fs.promises.open(file, 'r');
  try {
    const reads = [];
    let pos = start;
    const next = () => {
      if (pos >= stop) return undefined;
      const len = Math.min(CHUNK, stop - pos);
      const p = fh.read(Buffer.allocUnsafe(len), 0, len, pos);
      pos += len;
      return p;
    };
    for (let i = 0; i < POOL; i++) {
      const p = next();
      if (p) reads.push(p);
    }
    while (reads.length > 0) {
      const { bytesRead, buffer } = await reads.shift();
      if (bytesRead === 0) throw new Error('file shrank');
      const p = next();
      if (p) reads.push(p);
      if (res.destroyed) return;
      if (!res.write(bytesRead === buffer.length ? buffer : buffer.subarray(0, bytesRead))) {
        await new Promise((resolve, reject) => {
          const done = (err) => {
            res.off('drain', done);
            res.off('close', done);
            err ? reject(err) : resolve();
          };
          res.on('drain', done);
          res.on('close', done);
        });
      }
    }
    res.end();
  } finally {
    await fh.close();
  }
}

function json(res, body) {
  const text = JSON.stringify(body);
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function end(res, status) {
  res.writeHead(status, { 'content-length': '0' });
  res.end();
}

server.listen(port, '127.0.0.1', () => {
  process.stdout.write(`listening ${server.address().port}\n`);
});
process.on('SIGTERM', () => process.exit(0));
process.on('disconnect', () => process.exit(0));
// Started with a stdin pipe by the bench: exit when the bench goes, however it ends.
if (process.argv.includes('--exit-with-stdin')) {
  process.stdin.on('end', () => process.exit(0));
  process.stdin.on('error', () => process.exit(0));
  process.stdin.resume();
}
