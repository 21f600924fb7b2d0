import { Readable } from 'node:stream';
import type { BlockReadable, ByteSink } from '../types';

/** Body bytes the reader may buffer before the socket is paused. */
export const BODY_HIGH_WATER_MARK = 4 << 20;

/** What a body asks of the connection that feeds it. */
export interface BodyFeed {
  /** The reader wants bytes ('data' mode). */
  resume(): void;
  /** The reader takes the body through a sink instead. */
  pipeTo(sink: ByteSink): Promise<void>;
  /** The reader destroyed the body (error, early exit): stop the transfer. */
  bodyDestroyed(err: Error | null): void;
  /** Follow another AbortSignal from now on. */
  bindSignal(signal: AbortSignal | undefined): void;
}

/** The body of one streamed response: a Readable fed by the socket, or a ByteSink feeder (see pipeTo). */
export class HttpBodyStream extends Readable implements BlockReadable {
  /** Body bytes received so far. */
  bytes = 0;

  constructor(private readonly feed: BodyFeed) {
    super({ highWaterMark: BODY_HIGH_WATER_MARK });
  }

  /** Makes this body follow `signal` instead of the one it was requested with. */
  rebind(signal: AbortSignal | undefined): void {
    this.feed.bindSignal(signal);
  }

  pipeTo(sink: ByteSink): Promise<void> {
    return this.feed.pipeTo(sink);
  }

  override _read(): void {
    this.feed.resume();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.feed.bodyDestroyed(err);
    cb(err);
  }
}
