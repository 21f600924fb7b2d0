import { ImageDownloadFailed } from '@imagecache/errors';
import type { ErrorPlace } from './transfer-errors';

/** What a window too slow measured. */
export interface SlowWindow {
  bytes: number;
  ms: number;
  minRate: number;
  windowMs: number;
}

/**
 * The minimum transfer rate of a body (`http.minRate` over `http.minRateWindow`), measured over back-to-back
 * windows: a source that trickles (a byte a second keeps the inactivity timeout happy) holds a download slot
 * for one window at most. Time paused because our reader is behind restarts the window: it is not the source's.
 */
export class MinRate {
  private start = -1;
  private startBytes = 0;

  constructor(
    readonly bytesPerSec: number,
    readonly windowMs: number,
  ) {}

  get on(): boolean {
    return this.bytesPerSec > 0 && this.windowMs > 0;
  }

  /** A finished window that was too slow, else undefined. */
  check(now: number, bytes: number, paused: boolean): SlowWindow | undefined {
    if (!this.on) return undefined;
    if (paused || this.start < 0) {
      this.start = now;
      this.startBytes = bytes;
      return undefined;
    }
    const ms = now - this.start;
    if (ms < this.windowMs) return undefined;
    const got = bytes - this.startBytes;
    this.start = now;
    this.startBytes = bytes;
    if (got * 1000 >= this.bytesPerSec * ms) return undefined;
    return { bytes: got, ms, minRate: this.bytesPerSec, windowMs: this.windowMs };
  }
}

/** The (retryable) error of a body below the minimum rate. */
export function slowError(at: ErrorPlace, w: SlowWindow): ImageDownloadFailed {
  return new ImageDownloadFailed(
    `${at.what}: slower than the minimum rate of ${w.minRate} bytes/s (${w.bytes} bytes in ${Math.round(w.ms)} ms; ` +
      `http.minRate over http.minRateWindow of ${w.windowMs / 1000} s)`,
    { href: at.ctx.safeHref, retryable: true, reason: 'min-rate', bytes: at.got },
  );
}
