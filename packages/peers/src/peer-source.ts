import { ImageDownloadFailed } from '@imagecache/errors';
import {
  HttpSource,
  type HttpOptions,
  type ImageBody,
  type ImageInfo,
  type ImageSource,
  type OpenOptions,
  type ShowOptions,
} from '@imagecache/sources';

export interface PeerSourceOptions {
  /** The master on the peer: `peerMasterUrl(advertiseUrl, cache, master)`. */
  url: string;
  /**
   * A token for `<cache>/<master>` (`signPeerToken`), or a function making one: then each request gets a fresh
   * token, so a download resumed after the first token's expiry still gets in.
   */
  token: string | (() => string);
  /** The sha256 the holder recorded at publish: given to the engine as the checksum the source vouches for. */
  expectedSha256?: string;
  /** The size the holder recorded: a peer that announces another is refused before any byte is taken. */
  expectedSize?: number;
  /** Timeouts, minimum rate, TLS trust (`caFile`) of the requests to the peer. */
  http?: HttpOptions;
}

/**
 * A master on another host of the fleet, as an image source: our HTTP/1.1 receive path (resumable with Range +
 * If-Range on the peer's ETag) with the peer token as a bearer credential, sent to that URL only (a redirect to
 * another origin drops it). The engine verifies the bytes: `show()` vouches for `expectedSha256`.
 */
export class PeerSource implements ImageSource {
  readonly kind = 'http' as const;
  readonly href: string;
  readonly safeHref: string;
  readonly imageId: undefined = undefined;
  private current?: HttpSource;

  constructor(private readonly options: PeerSourceOptions) {
    this.href = options.url;
    this.safeHref = options.url; // the credential travels in a header, never in the URL
    this.source(); // validates the URL now (InvalidHref)
  }

  async show(opts: ShowOptions = {}): Promise<ImageInfo> {
    return this.vouched(await this.source().show(opts));
  }

  async open(opts: OpenOptions = {}): Promise<ImageBody> {
    const body = await this.source().open(opts);
    try {
      return { ...body, info: this.vouched(body.info) };
    } catch (err) {
      body.stream.destroy();
      throw err;
    }
  }

  close(): void {
    this.current?.close();
  }

  /** The HttpSource of the next request: one per token (a fixed token: the same one throughout). */
  private source(): HttpSource {
    const { token, url, http } = this.options;
    if (this.current && typeof token === 'string') return this.current;
    this.current?.close();
    const bearer = typeof token === 'string' ? token : token();
    this.current = new HttpSource(url, { http, auth: { type: 'bearer', token: bearer } });
    return this.current;
  }

  private vouched(info: ImageInfo): ImageInfo {
    const { expectedSize, expectedSha256 } = this.options;
    if (expectedSize !== undefined && info.size !== undefined && info.size !== expectedSize) {
      throw new ImageDownloadFailed(
        `peer ${this.safeHref} serves ${info.size} bytes, ${expectedSize} were recorded at publish`,
        { href: this.safeHref, retryable: false },
      );
    }
    return expectedSha256 === undefined
      ? info
      : { ...info, checksum: { algo: 'sha256', value: expectedSha256.toLowerCase() } };
  }
}

/** A peer's master as an `ImageSource` (see `PeerSource`). */
export function peerSourceFor(options: PeerSourceOptions): PeerSource {
  return new PeerSource(options);
}
