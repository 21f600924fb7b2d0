import { Transform, type TransformCallback } from 'node:stream';
import type { TokenBucket } from './token-bucket';

/**
 * Passes chunks on no faster than `bucket` allows: a chunk waits for its bytes, and while it waits the stream
 * takes no other (backpressure reaches the file read, so memory stays at a chunk or two).
 */
export class Throttle extends Transform {
  private timer?: NodeJS.Timeout;

  constructor(private readonly bucket: TokenBucket) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    const wait = this.bucket.take(chunk.length);
    if (wait <= 0) {
      done(null, chunk);
      return;
    }
    this.timer = setTimeout(() => {
      this.timer = undefined;
      done(null, chunk);
    }, wait);
  }

  override _destroy(err: Error | null, done: (error: Error | null) => void): void {
    if (this.timer) clearTimeout(this.timer);
    done(err);
  }
}
