import type * as net from 'node:net';
import { openSocket, type OpenedSocket } from './connection';
import type { ConnectSettings } from './dispatchers';
import type { PinnedAddress } from './redirect-policy';

/** How long a kept connection may wait for its next HEAD (below common servers' keep-alive: nginx 75 s, Node 5 s). */
export const IDLE_SOCKET_MS = 4_000;
/** Kept connections per origin at most. */
const PER_ORIGIN = 4;
/** What one read of a HEAD connection takes at most (a head longer than this arrives in several). */
const READ_BUFFER_BYTES = 16 << 10;

/** What a HEAD connection's events go to while an exchange uses it. */
export interface ConnectionUser {
  onData(chunk: Buffer): void;
  onError(err: Error): void;
  onEnd(): void;
  onClose(): void;
  /** The time given to `arm` passed without `disarm`. */
  onTimeout(): void;
}

/**
 * A connection HEADs are sent on, with its listeners set once: while an exchange uses it its events go to that
 * exchange, while it is kept idle anything that happens on it (a byte, the server's close, the idle timeout)
 * drops it. Handing it from one exchange to the next (a warm hit is one HEAD on it) adds and removes no
 * listener and makes no timer.
 */
export class HeadConnection {
  /** The exchange using it; none while it is kept or once it is given up. */
  user?: ConnectionUser;
  /** The pool keeping it while it is idle, and for which origin. */
  private keptBy?: IdleSockets;
  private keptFor = '';
  /** The exchange's answer timer: made once, refreshed for each exchange (see arm). */
  private timer?: NodeJS.Timeout;
  private timerMs = 0;
  private armed = false;

  /**
   * A new connection to `url`'s origin. On plain http its reads land in a buffer of its own and come straight
   * here (no stream buffering, no 'data' event); over TLS, as 'data' events.
   */
  static open(
    url: URL,
    settings: ConnectSettings,
    pin?: PinnedAddress,
  ): { conn: HeadConnection; ready: OpenedSocket['ready'] } {
    const buffer = Buffer.allocUnsafe(READ_BUFFER_BYTES);
    // The reads' callback is given before the connection it reports to exists.
    const to: { conn?: HeadConnection } = {};
    const opened = openSocket(
      url,
      settings,
      {
        buffer,
        callback: (n, buf) => {
          to.conn?.onRead(Buffer.from(buf.buffer, buf.byteOffset, n));
          return true; // keep reading: an idle connection must see the server's close
        },
      },
      pin,
    );
    const conn = new HeadConnection(opened.socket, url.protocol === 'http:');
    to.conn = conn;
    return { conn, ready: opened.ready };
  }

  private constructor(
    readonly socket: net.Socket,
    /** Reads come through onRead (openSocket's onread), not 'data' events. */
    ownReads: boolean,
  ) {
    if (!ownReads) socket.on('data', (chunk: Buffer) => this.onRead(chunk));
    socket.on('error', (err: Error) => (this.user ? this.user.onError(err) : this.drop()));
    socket.on('end', () => (this.user ? this.user.onEnd() : this.drop()));
    socket.on('close', () => {
      clearTimeout(this.timer);
      if (this.user) this.user.onClose();
      else this.drop();
    });
    // Counted from the connection's last byte either way; an exchange in progress has its own timer.
    socket.on('timeout', () => this.user || this.drop());
    socket.setTimeout(IDLE_SOCKET_MS);
  }

  private onRead(chunk: Buffer): void {
    if (this.user) this.user.onData(chunk);
    else this.drop();
  }

  /** Calls the user's onTimeout unless disarmed within `ms`. */
  arm(ms: number): void {
    this.armed = true;
    if (this.timer && this.timerMs === ms) {
      this.timer.refresh();
      return;
    }
    clearTimeout(this.timer);
    this.timerMs = ms;
    // Unref'd: while an exchange waits, its socket keeps the process alive.
    this.timer = setTimeout(() => {
      if (!this.armed) return;
      this.armed = false;
      this.user?.onTimeout();
    }, ms).unref();
  }

  disarm(): void {
    this.armed = false;
  }

  /** Kept by `pool` for the next HEAD to `origin`: unref'd, events drop it. */
  keep(pool: IdleSockets, origin: string): void {
    this.user = undefined;
    this.armed = false;
    this.keptBy = pool;
    this.keptFor = origin;
    this.socket.unref();
  }

  /** Taken from the pool for an exchange. */
  reuse(user: ConnectionUser): void {
    this.keptBy = undefined;
    this.user = user;
    this.socket.ref();
  }

  /** Given up: destroyed, whatever it was doing, with nobody told. */
  destroy(): void {
    this.user = undefined;
    this.armed = false;
    this.socket.destroy();
  }

  private drop(): void {
    const pool = this.keptBy;
    this.keptBy = undefined;
    pool?.forget(this.keptFor, this);
    this.socket.destroy();
  }
}

/**
 * Connections kept alive after a HEAD, per origin, for the next HEAD: a warm cache hit costs one request on an
 * open connection. An idle connection that the server closes, or that sends anything, is dropped; kept ones
 * never hold the process open.
 */
export class IdleSockets {
  private readonly byOrigin = new Map<string, Set<HeadConnection>>();

  /** A kept connection to `origin` for `user`, if one is still usable. */
  take(origin: string, user: ConnectionUser): HeadConnection | undefined {
    const set = this.byOrigin.get(origin);
    if (!set) return undefined;
    for (const conn of set) {
      set.delete(conn);
      if (set.size === 0) this.byOrigin.delete(origin);
      if (conn.socket.destroyed || !conn.socket.writable) {
        conn.destroy();
        continue;
      }
      conn.reuse(user);
      return conn;
    }
    return undefined;
  }

  /** Keeps `conn` (its exchange is over) for the next HEAD to `origin`. */
  park(origin: string, conn: HeadConnection): void {
    let set = this.byOrigin.get(origin);
    if (!set) this.byOrigin.set(origin, (set = new Set()));
    if (set.size >= PER_ORIGIN) {
      conn.destroy();
      return;
    }
    set.add(conn);
    conn.keep(this, origin);
  }

  /** A kept connection that was dropped. */
  forget(origin: string, conn: HeadConnection): void {
    const set = this.byOrigin.get(origin);
    if (!set) return;
    set.delete(conn);
    if (set.size === 0) this.byOrigin.delete(origin);
  }

  destroyAll(): void {
    for (const set of this.byOrigin.values()) for (const c of set) c.destroy();
    this.byOrigin.clear();
  }
}
