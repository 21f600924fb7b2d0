import { ImageFormatMismatch, ImageFormatNotPermitted, InvalidImage, UnsafeImage } from '@imagecache/errors';
import {
  checkPolicy,
  DEFAULT_PERMITTED_FORMATS,
  formatMatches,
  isFormatPermitted,
  qemuFormatName,
  type FormatReport,
  type ImageFormat,
} from '@imagecache/formats';

const report = (format: ImageFormat, unsafeReasons: string[] = []): FormatReport => ({
  format,
  virtualSize: 1,
  actualSize: 1,
  safe: unsafeReasons.length === 0,
  unsafeReasons,
});

describe('checkPolicy', () => {
  it('accepts the default formats', () => {
    expect(DEFAULT_PERMITTED_FORMATS).toEqual(['raw', 'gpt', 'qcow2', 'iso']);
    for (const f of ['raw', 'gpt', 'qcow2', 'iso'] as const) expect(checkPolicy(report(f))).toBe(f);
  });

  it('throws UnsafeImage listing the reasons, before anything else', () => {
    const err = (() => {
      try {
        checkPolicy(report('qcow2', ['qcow2: image has a backing file', 'x']), { expectedFormat: 'raw' });
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(UnsafeImage);
    expect(err).toBeInstanceOf(InvalidImage);
    expect((err as UnsafeImage).code).toBe('UNSAFE_IMAGE');
    expect((err as Error).message).toContain('qcow2: image has a backing file; x');
    expect((err as UnsafeImage).details).toMatchObject({
      format: 'qcow2',
      reasons: ['qcow2: image has a backing file', 'x'],
    });
  });

  it('refuses formats that are not permitted; raw implies gpt', () => {
    expect(() => checkPolicy(report('vmdk'))).toThrow(ImageFormatNotPermitted);
    expect(() => checkPolicy(report('luks'))).toThrow(/luks is not permitted/);
    expect(checkPolicy(report('gpt'), { permitted: ['raw'] })).toBe('gpt');
    expect(() => checkPolicy(report('gpt'), { permitted: ['qcow2'] })).toThrow(ImageFormatNotPermitted);
    expect(() => checkPolicy(report('raw'), { permitted: ['gpt'] })).toThrow(ImageFormatNotPermitted);
    expect(checkPolicy(report('vhd'), { permitted: ['vhd'] })).toBe('vhd');
    expect(new ImageFormatNotPermitted('x')).toBeInstanceOf(InvalidImage);
    expect(isFormatPermitted('gpt', ['raw'])).toBe(true);
  });

  it('matches the expected format: aki/ari anything, raw is raw or gpt, else equality', () => {
    expect(checkPolicy(report('qcow2'), { expectedFormat: 'aki' })).toBe('qcow2');
    expect(checkPolicy(report('iso'), { expectedFormat: 'ari' })).toBe('iso');
    expect(checkPolicy(report('gpt'), { expectedFormat: 'raw' })).toBe('gpt');
    expect(checkPolicy(report('raw'), { expectedFormat: 'raw' })).toBe('raw');
    // A qcow2 claiming to be raw is refused (CVE-2024-44082).
    expect(() => checkPolicy(report('qcow2'), { expectedFormat: 'raw' })).toThrow(ImageFormatMismatch);
    expect(() => checkPolicy(report('raw'), { expectedFormat: 'gpt' })).toThrow(ImageFormatMismatch);
    expect(() => checkPolicy(report('gpt'), { expectedFormat: 'iso' })).toThrow(ImageFormatMismatch);
    expect(() => checkPolicy(report('raw'), { expectedFormat: 'ami' })).toThrow(/declared "ami"/);
    expect(formatMatches('qcow2', 'qcow2')).toBe(true);
    expect(new ImageFormatMismatch('x').code).toBe('IMAGE_FORMAT_MISMATCH');
  });

  it('names qemu-img drivers', () => {
    expect(qemuFormatName('vhd')).toBe('vpc');
    expect(qemuFormatName('gpt')).toBe('raw');
    expect(qemuFormatName('iso')).toBe('raw');
    expect(qemuFormatName('qcow2')).toBe('qcow2');
  });
});
