import { createHash, randomBytes } from 'node:crypto';
import * as path from 'node:path';
import { ImageChecksumAlgorithmFailure } from '@imagecache/errors';
import {
  allocSharedBuffer,
  closeHashWorkers,
  hashFile,
  HashWorkerError,
  StreamHasher,
  type ChecksumAlgo,
} from '@imagecache/checksum';
import { randomFile, tmpDir } from '@imagecache/testing';
import { _poolWorkers, acquireWorker, HashChannel } from '../src/worker-pool';

const ALGOS: ChecksumAlgo[] = ['md5', 'sha256', 'sha512'];
const SIZES = [0, 1, 3, 63, 64, 65, 127, 4095, 65536, (1 << 20) + 7, 5 * 1024 * 1024 + 3];
const MiB = 1024 * 1024;

const ref = (algo: ChecksumAlgo, ...parts: Uint8Array[]) => {
  const h = createHash(algo);
  for (const p of parts) h.update(p);
  return h.digest('hex');
};

function sharedCopy(data: Uint8Array, offset = 0): Uint8Array {
  const buf = allocSharedBuffer(data.length + offset + 5);
  buf.set(data, offset);
  return buf.subarray(offset, offset + data.length);
}

afterAll(() => closeHashWorkers());

describe('StreamHasher', () => {
  it('allocSharedBuffer gives a Buffer over a SharedArrayBuffer', () => {
    const b = allocSharedBuffer(10);
    expect(Buffer.isBuffer(b)).toBe(true);
    expect(b.buffer).toBeInstanceOf(SharedArrayBuffer);
    expect(b.length).toBe(10);
  });

  it('rejects an unknown algorithm synchronously', () => {
    expect(() => new StreamHasher('sha1' as ChecksumAlgo)).toThrow(ImageChecksumAlgorithmFailure);
  });

  it('the digest of nothing', async () => {
    for (const algo of ALGOS) await expect(new StreamHasher(algo).digest()).resolves.toBe(ref(algo));
  });

  describe.each(ALGOS)('%s matches node:crypto', (algo) => {
    it.each(SIZES)('single chunk of %i bytes, SAB and plain', async (size) => {
      const data = randomBytes(size);
      for (const chunk of [data, sharedCopy(data), sharedCopy(data, 3), new Uint8Array(data)]) {
        const h = new StreamHasher(algo);
        await h.update(chunk);
        await expect(h.digest()).resolves.toBe(ref(algo, data));
      }
    });

    it('many odd-sized chunks, SAB and plain mixed, all queued at once', async () => {
      const chunks = SIZES.concat([7, 0, 1, 999, 2 * MiB + 1]).map((n) => randomBytes(n));
      const h = new StreamHasher(algo);
      const pending = chunks.map((c, i) => h.update(i % 2 ? sharedCopy(c, i % 5) : c));
      const digest = h.digest(); // queued behind the updates
      await Promise.all(pending);
      await expect(digest).resolves.toBe(ref(algo, ...chunks));
      expect(h.bytesQueued).toBe(chunks.reduce((n, c) => n + c.length, 0));
    });
  });

  it('a SAB block may be reused once its update resolved (ring of blocks)', async () => {
    const data = randomBytes(13 * MiB + 11);
    const blockSize = MiB + 3;
    const ring = [allocSharedBuffer(blockSize), allocSharedBuffer(blockSize)];
    const inFlight: (Promise<void> | undefined)[] = [];
    const h = new StreamHasher('sha256');
    for (let off = 0, i = 0; off < data.length; off += blockSize, i++) {
      await inFlight[i % 2];
      const block = ring[i % 2] as Buffer;
      const n = data.copy(block, 0, off, off + blockSize);
      inFlight[i % 2] = h.update(block.subarray(0, n));
    }
    await expect(h.digest()).resolves.toBe(ref('sha256', data));
  });

  it('SAB chunks are hashed in place, not copied (so they must not change before update() resolves)', async () => {
    const h = new StreamHasher('sha256');
    const busy = allocSharedBuffer(128 * MiB); // keeps the worker busy for a while
    const first = h.update(busy);
    const block = allocSharedBuffer(1024).fill(1);
    const second = h.update(block);
    block.fill(2); // before the worker reached it: the worker sees the new bytes
    await Promise.all([first, second]);
    await expect(h.digest()).resolves.toBe(ref('sha256', busy, Buffer.alloc(1024, 2)));
  });

  it('a plain buffer may be overwritten as soon as update() returns (it was copied)', async () => {
    const a = randomBytes(3 * MiB);
    const scratch = Buffer.from(a);
    const h = new StreamHasher('sha512');
    const p = h.update(scratch);
    scratch.fill(0);
    await p;
    await expect(h.digest()).resolves.toBe(ref('sha512', a));
  });

  it('several hashers at once give independent results', async () => {
    const n = 7;
    const inputs = Array.from({ length: n }, (_, i) =>
      Array.from({ length: 5 + i }, (_x, j) => randomBytes((j + 1) * 4099 * (i + 1))),
    );
    const hashers = inputs.map((_, i) => new StreamHasher(ALGOS[i % 3] as ChecksumAlgo));
    // interleave the chunks of all hashers
    const pending: Promise<void>[] = [];
    for (let j = 0; j < 11; j++) {
      inputs.forEach((chunks, i) => {
        const c = chunks[j];
        if (c) pending.push((hashers[i] as StreamHasher).update(j % 2 ? sharedCopy(c) : c));
      });
    }
    const digests = await Promise.all(hashers.map((h) => h.digest()));
    await Promise.all(pending);
    digests.forEach((d, i) => expect(d).toBe(ref(ALGOS[i % 3] as ChecksumAlgo, ...(inputs[i] as Buffer[]))));
    expect(_poolWorkers().length).toBeLessThanOrEqual(2);
  });

  it('destroy() mid-way does not disturb the hashers sharing its worker', async () => {
    const data = randomBytes(4 * MiB + 1);
    const hashers = Array.from({ length: 5 }, () => new StreamHasher('sha256'));
    const pending = hashers.map((h) => h.update(sharedCopy(data)));
    const [a, b, c, d, e] = hashers as [StreamHasher, StreamHasher, StreamHasher, StreamHasher, StreamHasher];
    b.destroy();
    d.destroy();
    d.destroy(); // idempotent
    // updates queued before destroy() still settle (the caller's buffers are released)
    await Promise.all(pending);
    await expect(b.update(data)).rejects.toThrow(/destroyed/);
    await expect(b.digest()).rejects.toThrow(/destroyed/);
    for (const h of [a, c, e]) await h.update(data);
    const digests = await Promise.all([a, c, e].map((h) => h.digest()));
    for (const x of digests) expect(x).toBe(ref('sha256', data, data));
  });

  it('finished hashers refuse further use; destroy() after digest never throws', async () => {
    const h = new StreamHasher('md5');
    await h.update(Buffer.from('x'));
    await expect(h.digest()).resolves.toBe(ref('md5', Buffer.from('x')));
    await expect(h.update(Buffer.from('y'))).rejects.toThrow(/finished/);
    await expect(h.digest()).rejects.toThrow(/finished/);
    expect(() => h.destroy()).not.toThrow();
  });

  it('an error inside the worker rejects update() and digest()', async () => {
    const ch = new HashChannel(acquireWorker(), 'no-such-hash');
    await expect(ch.update(new ArrayBuffer(4), 0, 4)).rejects.toThrow(HashWorkerError);
    await expect(ch.digest()).rejects.toThrow(/Digest method not supported|Invalid digest/i);
    // the worker survives and serves others
    const h = new StreamHasher('sha256');
    await h.update(Buffer.from('ok'));
    await expect(h.digest()).resolves.toBe(ref('sha256', Buffer.from('ok')));
  });

  it('a buffer that cannot be posted rejects that update only', async () => {
    const ch = new HashChannel(acquireWorker(), 'sha256');
    const notABuffer = { length: 8 } as unknown as ArrayBuffer; // postMessage throws on its transfer list
    await expect(ch.update(notABuffer, 0, 8)).rejects.toThrow();
    await ch.update(new ArrayBuffer(3), 0, 3);
    await expect(ch.digest()).resolves.toBe(ref('sha256', new Uint8Array(3)));
  });

  it('a worker crash rejects pending and later calls, and the pool recovers', async () => {
    const h = new StreamHasher('sha256');
    await h.update(Buffer.from('before'));
    const worker = _poolWorkers().find(
      (w) => w.load > 0 && w === (h as unknown as { channel: { owner: unknown } }).channel.owner,
    );
    expect(worker).toBeDefined();
    const big = sharedCopy(randomBytes(8 * MiB));
    // process.exit(7) inside the worker thread, before it gets to the requests queued next
    worker?.send({ op: 'exit', code: 7 }, false);
    const pending = [h.update(big), h.update(big), h.update(big)];
    const results = await Promise.allSettled(pending);
    for (const r of results) {
      expect(r.status).toBe('rejected');
      expect(String((r as PromiseRejectedResult).reason)).toMatch(/exited \(code 7\)/);
    }
    expect(_poolWorkers()).not.toContain(worker);
    // the failure sticks: later calls reject at once instead of hanging
    await expect(h.update(big)).rejects.toThrow(HashWorkerError);
    await expect(h.digest()).rejects.toThrow(/exited \(code 7\)/);
    expect(() => h.destroy()).not.toThrow();

    const after = new StreamHasher('sha256');
    await after.update(Buffer.from('after'));
    await expect(after.digest()).resolves.toBe(ref('sha256', Buffer.from('after')));
  });

  it('a terminated pool fails hashes in progress and restarts on demand', async () => {
    const h = new StreamHasher('sha512');
    const p = h.update(sharedCopy(randomBytes(16 * MiB)));
    const d = h.digest();
    await closeHashWorkers();
    await expect(d).rejects.toThrow(HashWorkerError);
    await expect(p).rejects.toThrow(HashWorkerError);
    expect(_poolWorkers()).toHaveLength(0);
    const again = new StreamHasher('sha512');
    await expect(again.digest()).resolves.toBe(ref('sha512'));
  });
});

describe('hashFile', () => {
  const dir = tmpDir();
  it.each([0, 1, 4 * MiB, 4 * MiB + 1, 13 * MiB + 5])('matches node:crypto for %i bytes', async (size) => {
    const file = path.join(dir, `f${size}`);
    const data = randomFile(file, size);
    await expect(hashFile(file, 'sha256')).resolves.toBe(ref('sha256', data));
    await expect(hashFile(file, 'md5', { blockSize: 65537, blocks: 3 })).resolves.toBe(ref('md5', data));
  });

  it('fails for a missing file and when aborted', async () => {
    await expect(hashFile(path.join(dir, 'nope'), 'sha256')).rejects.toThrow(/ENOENT/);
    const file = path.join(dir, 'abort');
    randomFile(file, MiB);
    await expect(hashFile(file, 'sha256', { signal: AbortSignal.abort() })).rejects.toMatchObject({
      code: 'ABORTED',
    });
  });
});
