import * as fs from 'node:fs';
import * as path from 'node:path';
import { ImageRefValidationFailed } from '@imagecache/errors';
import { FileSource, resolveSource, type SourceOptions } from '@imagecache/sources';
import { randomFile, tmpDir } from '@imagecache/testing';
import { caught, readAll } from './helpers';

/** Issue 9, F1 and F2: file:// can't be used to read, or to probe, what lies outside the roots. */

let root: string;
let outside: string;
let options: SourceOptions;

beforeAll(() => {
  root = tmpDir('sources-escape-root-');
  outside = tmpDir('sources-escape-outside-');
  randomFile(path.join(outside, 'secret.img'), 4096);
  options = { fileRoots: [root] };
});
afterAll(() => {
  fs.rmSync(root, { recursive: true, force: true });
  fs.rmSync(outside, { recursive: true, force: true });
});

async function refusal(file: string, opts: SourceOptions = options): Promise<ImageRefValidationFailed> {
  const err = await caught(resolveSource(`file://${file}`, opts));
  expect(err).toBeInstanceOf(ImageRefValidationFailed);
  expect(err.code).toBe('IMAGE_REF_VALIDATION_FAILED');
  return err as ImageRefValidationFailed;
}

describe('file:// escapes', () => {
  it('F1: refuses a hard link inside a root to a file outside it, unless allowHardLinks', async () => {
    const link = path.join(root, 'linked.img');
    fs.linkSync(path.join(outside, 'secret.img'), link);
    const err = await refusal(link);
    expect(err.message).toMatch(/more than one hard link.*file\.allowHardLinks/);
    expect(err.message).not.toContain(outside);

    const allowed = await resolveSource(`file://${link}`, { ...options, fileAllowHardLinks: true });
    const body = await allowed.open();
    expect((await readAll(body.stream)).equals(fs.readFileSync(path.join(outside, 'secret.img')))).toBe(true);
  });

  it('F1: refuses to open a file that got a second link after the check', async () => {
    const file = path.join(root, 'later.img');
    fs.writeFileSync(file, 'x');
    const source = (await resolveSource(`file://${file}`, options)) as FileSource;
    fs.linkSync(file, path.join(outside, 'later-link.img'));
    const err = await caught(source.open());
    expect(err).toBeInstanceOf(ImageRefValidationFailed);
    expect(err.message).toMatch(/more than one hard link/);
  });

  it('F2: a symlink out of the roots gets the same refusal whether its target exists or not', async () => {
    fs.symlinkSync(path.join(outside, 'secret.img'), path.join(root, 'present.img'));
    fs.symlinkSync(path.join(outside, 'no-such.img'), path.join(root, 'missing.img'));
    fs.symlinkSync(path.join(outside, 'no-such-dir'), path.join(root, 'dirlink'));
    const present = await refusal(path.join(root, 'present.img'));
    const missing = await refusal(path.join(root, 'missing.img'));
    expect(missing.message.replace('missing.img', 'present.img')).toBe(present.message);
    expect(present.message).toMatch(/resolves \(through a link\) outside the allowed folders/);
    // A missing folder reached through a link: still the outside-root refusal, not "not found".
    const deeper = await refusal(path.join(root, 'dirlink', 'disk.img'));
    expect(deeper.message).toMatch(/resolves \(through a link\) outside/);
    // A relative link that climbs out, to nothing.
    fs.symlinkSync('../../nowhere/x.img', path.join(root, 'relative.img'));
    expect((await refusal(path.join(root, 'relative.img'))).message).toMatch(/outside/);
  });
});
