import * as fs from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { ImageNotFound, ImageRefValidationFailed, OperationAborted } from '@imagecache/errors';
import { FileSource, resolveSource, type SourceOptions } from '@imagecache/sources';
import { randomFile, tmpDir } from '@imagecache/testing';
import { caught, readAll } from './helpers';

let root: string;
let outside: string;
let options: SourceOptions;
let data: Buffer;

beforeAll(() => {
  root = tmpDir('sources-root-');
  outside = tmpDir('sources-outside-');
  data = randomFile(path.join(root, 'disk.img'), 6 << 20);
  randomFile(path.join(outside, 'other.img'), 1000);
  fs.mkdirSync(path.join(root, 'sub'));
  fs.symlinkSync(path.join(outside, 'other.img'), path.join(root, 'escape.img'));
  fs.symlinkSync('/etc/passwd', path.join(root, 'passwd.img'));
  fs.symlinkSync(path.join(root, 'disk.img'), path.join(root, 'sub', 'alias.img'));
  options = { fileRoots: [root] };
});
afterAll(() => {
  fs.rmSync(root, { recursive: true, force: true });
  fs.rmSync(outside, { recursive: true, force: true });
});

const href = (p: string) => `file://${p}`;

async function refused(h: string, opts: SourceOptions = options, why?: RegExp) {
  const err = await caught(resolveSource(h, opts));
  expect(err).toBeInstanceOf(ImageRefValidationFailed);
  expect(err.code).toBe('IMAGE_REF_VALIDATION_FAILED');
  if (why) expect(err.message).toMatch(why);
  return err;
}

describe('file:// sources', () => {
  it('reads an allowed file: size, mtime, never cached', async () => {
    const source = await resolveSource(href(path.join(root, 'disk.img')), options);
    expect(source).toBeInstanceOf(FileSource);
    expect(source.kind).toBe('file');
    const st = fs.statSync(path.join(root, 'disk.img'));
    const info = await source.show();
    expect(info).toMatchObject({ size: data.length, noCache: true, immutable: false, fileName: 'disk.img' });
    expect(info.updatedAt).toEqual(st.mtime);
    const opened = await source.open();
    expect(opened).toMatchObject({ start: 0, totalSize: data.length });
    expect((await readAll(opened.stream)).equals(data)).toBe(true);
  });

  it('accepts file://localhost/ and percent-encoded names', async () => {
    fs.writeFileSync(path.join(root, 'a b.img'), 'x');
    const source = await resolveSource(
      pathToFileURL(path.join(root, 'a b.img')).href.replace('file://', 'file://localhost'),
      options,
    );
    expect((await source.show()).fileName).toBe('a b.img');
  });

  it('reads from an offset when the validator matches, else from 0', async () => {
    const source = await resolveSource(href(path.join(root, 'disk.img')), options);
    const info = await source.show();
    const resumed = await source.open({ offset: 1000, validator: info.validator });
    expect(resumed.start).toBe(1000);
    expect((await readAll(resumed.stream)).equals(data.subarray(1000))).toBe(true);
    const fresh = await source.open({ offset: 1000, validator: 'other' });
    expect(fresh.start).toBe(0);
    fresh.stream.destroy();
  });

  it('follows a symlink that stays inside the root', async () => {
    const source = await resolveSource(href(path.join(root, 'sub', 'alias.img')), options);
    expect((await source.show()).size).toBe(data.length);
    expect((source as FileSource).path).toBe(fs.realpathSync(path.join(root, 'disk.img')));
  });

  it('allows files under a root that is itself a symlink', async () => {
    const link = `${root}-link`;
    fs.symlinkSync(root, link);
    try {
      const source = await resolveSource(href(path.join(link, 'disk.img')), { fileRoots: [link] });
      expect((await source.show()).size).toBe(data.length);
    } finally {
      fs.unlinkSync(link);
    }
  });

  it('refuses a file outside the allowed roots', async () => {
    await refused(href(path.join(outside, 'other.img')), options, /outside the allowed folders/);
  });

  it('refuses /etc/passwd, even when / is an allowed root, and by default', async () => {
    await refused('file:///etc/passwd', { fileRoots: ['/'] }, /system folder/);
    await refused('file:///etc/passwd', {});
  });

  it('refuses file:///dev/zero at once, without reading it', async () => {
    const t0 = Date.now();
    await refused('file:///dev/zero', { fileRoots: ['/'] }, /system folder/);
    await refused('file:///proc/self/environ', { fileRoots: ['/'] });
    await refused('file:///sys/kernel/notes', { fileRoots: ['/'] });
    expect(Date.now() - t0).toBeLessThan(200);
  });

  it('refuses ".." that climbs out of the root, in plain or percent-encoded form', async () => {
    await refused(`file://${root}/../${path.basename(outside)}/other.img`);
    await refused(`file://${root}/sub/%2e%2e/%2E%2E/${path.basename(outside)}/other.img`);
    await refused(`file://${root}/../../../../etc/passwd`);
  });

  it('refuses a symlink inside the root that points outside it', async () => {
    await refused(href(path.join(root, 'escape.img')), options, /outside the allowed folders/);
    // Where the link points is not told (no probing of the filesystem through error messages).
    const err = await refused(
      href(path.join(root, 'passwd.img')),
      options,
      /resolves \(through a link\) outside/,
    );
    expect(err.message).not.toContain('/etc');
  });

  it('says nothing about files outside the roots: missing or present, the same refusal', async () => {
    const present = await refused('file:///etc/hostname', options);
    const missing = await refused('file:///etc/no-such-file-here', options);
    expect(missing.message.replace('no-such-file-here', 'hostname')).toBe(present.message);
  });

  it('refuses a directory', async () => {
    await refused(href(path.join(root, 'sub')), options, /not a regular file/);
  });

  it('refuses a FIFO without blocking on it', async () => {
    const fifo = path.join(root, 'pipe.img');
    const { spawnSync } = await import('node:child_process');
    if (spawnSync('mkfifo', [fifo]).status !== 0) return;
    await refused(href(fifo), options, /not a regular file/);
  });

  it('refuses other hosts, relative forms, queries and an encoded "/"', async () => {
    await refused(`file://otherhost${root}/disk.img`);
    await refused(`file:${root}/disk.img`);
    await refused(`file://${root}/disk.img?x=1`);
    await refused(`file://${root}/sub%2Falias.img`);
  });

  it('says ImageNotFound for a missing file inside a root, and refuses one outside', async () => {
    const err = await caught(resolveSource(href(path.join(root, 'missing.img')), options));
    expect(err).toBeInstanceOf(ImageNotFound);
    await refused(href(path.join(outside, 'missing.img')));
  });

  it('refuses to open a file swapped since it was checked', async () => {
    const file = path.join(root, 'swap.img');
    fs.writeFileSync(file, 'first');
    const source = await resolveSource(href(file), options);
    fs.unlinkSync(file);
    fs.symlinkSync('/etc/passwd', file);
    expect(await caught(source.open())).toBeInstanceOf(ImageRefValidationFailed);
    expect(await caught(source.show())).toBeInstanceOf(ImageRefValidationFailed);
    const again = await resolveSource(href(file.replace('swap', 'disk')), options);
    fs.writeFileSync(`${file}.new`, 'second');
    fs.renameSync(`${file}.new`, path.join(root, 'disk.img'));
    expect(await caught(again.open())).toBeInstanceOf(ImageRefValidationFailed);
    fs.writeFileSync(path.join(root, 'disk.img'), data);
  });

  it('stops with OperationAborted when the signal aborts', async () => {
    const ac = new AbortController();
    const source = await resolveSource(href(path.join(root, 'disk.img')), options);
    const opened = await source.open({ signal: ac.signal });
    const err = await caught(
      (async () => {
        for await (const _chunk of opened.stream) ac.abort();
      })(),
    );
    expect(err).toBeInstanceOf(OperationAborted);
    expect(await caught(source.open({ signal: ac.signal }))).toBeInstanceOf(OperationAborted);
  });
});
