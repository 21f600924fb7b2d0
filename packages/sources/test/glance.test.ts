// A real Glance (Debian's python3-glance, standalone: sqlite, file store, no Keystone) on loopback.
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import {
  ConfigError,
  ImageDownloadFailed,
  ImageNotAuthorized,
  ImageNotFound,
  InvalidImage,
} from '@imagecache/errors';
import { closeHttpConnections, GlanceSource, resolveSource, type SourceOptions } from '@imagecache/sources';
import { caught, readAll } from './helpers';
import { freePort, startGlance, type Glance } from './servers/servers';

let glance: Glance;
let opts: SourceOptions;
const data = randomBytes(300_000);
const sha512 = createHash('sha512').update(data).digest('hex');
const md5 = createHash('md5').update(data).digest('hex');
let id: string;

beforeAll(async () => {
  // The image named "forbidden" can't be downloaded: Glance answers 403 (policy), as for a deactivated image.
  glance = await startGlance('noauth', { policy: `"download_image": "not 'forbidden':%(name)s"` });
  opts = { imageService: { endpoint: glance.url } };
  id = await glance.createImage(data, { name: 'disk', disk_format: 'qcow2' });
}, 60_000);
afterAll(async () => {
  await closeHttpConnections();
  await glance?.stop();
});

describe('image service (Glance v2): show', () => {
  it('resolves a bare UUID and glance://ID to the same image, named by its id', async () => {
    for (const href of [id, `glance://${id}`, id.toUpperCase(), `glance://glance.example:9292/${id}`]) {
      const s = await resolveSource(href, opts);
      expect(s).toBeInstanceOf(GlanceSource);
      expect(s.kind).toBe('glance');
      expect(s.imageId).toBe(id);
      const info = await s.show();
      expect(info).toMatchObject({
        size: data.length,
        immutable: true,
        noCache: false,
        diskFormat: 'qcow2',
        checksum: { algo: 'sha512', value: sha512 },
        fileName: id,
      });
      expect(info.updatedAt).toBeInstanceOf(Date);
      expect(Math.abs(info.updatedAt!.getTime() - Date.now())).toBeLessThan(120_000);
    }
  });

  it('accepts an endpoint given with /v2', async () => {
    const s = await resolveSource(id, { imageService: { endpoint: `${glance.url}/v2/` } });
    expect((await s.show()).size).toBe(data.length);
  });

  it('falls back to the md5 checksum when os_hash_algo is one it does not verify', async () => {
    const other = await glance.createImage(data);
    await glance.sql("UPDATE images SET os_hash_algo='sha3_512' WHERE id=?", [other]);
    const info = await (await resolveSource(other, opts)).show();
    expect(info.checksum).toEqual({ algo: 'md5', value: md5 });
  });

  it('vouches for os_hash_value as Glance records it (a wrong one makes the engine refuse the bytes)', async () => {
    const other = await glance.createImage(data);
    const wrong = 'ab'.repeat(64);
    await glance.sql('UPDATE images SET os_hash_value=? WHERE id=?', [wrong, other]);
    const info = await (await resolveSource(other, opts)).show();
    expect(info.checksum).toEqual({ algo: 'sha512', value: wrong });
  });

  it('refuses an image that is not active (queued: no data uploaded yet)', async () => {
    const queued = await glance.createImage(undefined);
    const err = await caught((await resolveSource(queued, opts)).show());
    expect(err).toBeInstanceOf(InvalidImage);
    expect(err.message).toMatch(/is queued in the image service, not active/);
    expect((err as InvalidImage).details.status).toBe('queued');
  });

  it('refuses a deactivated image', async () => {
    const other = await glance.createImage(data);
    expect(
      (await fetch(`${glance.url}/v2/images/${other}/actions/deactivate`, { method: 'POST' })).status,
    ).toBe(204);
    const err = await caught((await resolveSource(other, opts)).show());
    expect(err).toBeInstanceOf(InvalidImage);
    expect(err.message).toMatch(/deactivated/);
  });

  it('maps a deleted image and an unknown id to ImageNotFound (404)', async () => {
    const other = await glance.createImage(data);
    expect((await fetch(`${glance.url}/v2/images/${other}`, { method: 'DELETE' })).status).toBe(204);
    for (const gone of [other, '00000000-0000-4000-8000-000000000000']) {
      const err = await caught((await resolveSource(gone, opts)).show());
      expect(err).toBeInstanceOf(ImageNotFound);
      expect(err.message).toMatch(/HTTP 404/);
      expect((err as ImageNotFound).details.href).toBe(gone);
    }
  });

  it('needs an endpoint (or Keystone auth to find one): refused before any request', async () => {
    const err = await caught(resolveSource(id, {}));
    expect(err).toBeInstanceOf(ConfigError);
    expect(err.message).toMatch(/imageService\.endpoint/);
  });

  it('maps an unreachable image service to a retryable ImageDownloadFailed', async () => {
    const port = await freePort();
    const err = await caught(
      (await resolveSource(id, { imageService: { endpoint: `http://127.0.0.1:${port}` } })).show(),
    );
    expect(err).toBeInstanceOf(ImageDownloadFailed);
    expect(err.retryable).toBe(true);
    expect(err.message).toMatch(/connection refused/);
  });
});

describe('image service (Glance v2): download', () => {
  it('streams the image data', async () => {
    const s = await resolveSource(`glance://${id}`, opts);
    const body = await s.open();
    expect(body.start).toBe(0);
    expect(body.totalSize).toBe(data.length);
    expect((await readAll(body.stream)).equals(data)).toBe(true);
  });

  it('resumes at an offset with a Range request', async () => {
    const s = await resolveSource(id, opts);
    await s.show();
    const body = await s.open({ offset: 100_000 });
    expect(body.start).toBe(100_000);
    expect(body.totalSize).toBe(data.length);
    expect((await readAll(body.stream)).equals(data.subarray(100_000))).toBe(true);
  });

  it('maps a refused download (403) to ImageNotAuthorized', async () => {
    const forbidden = await glance.createImage(data, { name: 'forbidden' });
    const s = await resolveSource(forbidden, opts);
    await s.show(); // the record is readable
    const err = await caught(s.open());
    expect(err).toBeInstanceOf(ImageNotAuthorized);
    expect(err.code).toBe('IMAGE_NOT_AUTHORIZED');
    expect(err.retryable).toBe(false);
    expect(err.message).toMatch(/HTTP 403.*not authorized for image/);
  });

  it('refuses an image whose data is gone (Glance answers 204, no body)', async () => {
    const other = await glance.createImage(data);
    fs.rmSync(glance.storeFile(other));
    const s = await resolveSource(other, opts);
    await s.show();
    const err = await caught(s.open());
    expect(err).toBeInstanceOf(ImageDownloadFailed);
    expect(err.retryable).toBe(false);
    expect(err.message).toMatch(/contains no data/);
  });

  it('times out on a store file shorter than its size (Glance stalls): retryable', async () => {
    const other = await glance.createImage(data);
    fs.truncateSync(glance.storeFile(other), 1000);
    const s = await resolveSource(other, { ...opts, http: { inactivityTimeoutMs: 800 } });
    const body = await s.open();
    const err = await caught(readAll(body.stream));
    expect(err).toBeInstanceOf(ImageDownloadFailed);
    expect(err.retryable).toBe(true);
    // Glance either stalls (keep-alive) or closes the connection (we ask for Connection: close).
    expect(err.message).toMatch(/no data for 800 ms|connection closed after 1000 of 300000 bytes/);
  });
});
