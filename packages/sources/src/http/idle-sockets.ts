import type * as net from 'node:net';

/** How long a kept connection may wait for its next HEAD (below common servers' keep-alive: nginx 75 s, Node 5 s). */
export const IDLE_SOCKET_MS = 4_000;
/** Kept connections per origin at most. */
const PER_ORIGIN = 4;

/**
 * Connections kept alive after a HEAD, per origin, for the next HEAD: a warm cache hit costs one request on an
 * open connection. An idle connection that the server closes, or that sends anything, is dropped; kept ones
 * never hold the process open.
 */
export class IdleSockets {
  private readonly byOrigin = new Map<string, Set<net.Socket>>();
  /** The listener that drops an idle socket, to be taken off when it is reused. */
  private readonly droppers = new WeakMap<net.Socket, () => void>();

  take(origin: string): net.Socket | undefined {
    const set = this.byOrigin.get(origin);
    if (!set) return undefined;
    for (const socket of set) {
      set.delete(socket);
      if (set.size === 0) this.byOrigin.delete(origin);
      if (socket.destroyed || !socket.writable) {
        socket.destroy();
        continue;
      }
      const drop = this.droppers.get(socket);
      if (drop) {
        socket.off('data', drop).off('end', drop).off('error', drop).off('close', drop).off('timeout', drop);
      }
      socket.setTimeout(0);
      socket.ref();
      return socket;
    }
    return undefined;
  }

  /** Keeps `socket` (no listener of the last exchange left on it) for the next HEAD to `origin`. */
  park(origin: string, socket: net.Socket): void {
    let set = this.byOrigin.get(origin);
    if (!set) this.byOrigin.set(origin, (set = new Set()));
    if (set.size >= PER_ORIGIN) {
      socket.destroy();
      return;
    }
    set.add(socket);
    const drop = () => {
      set.delete(socket);
      if (set.size === 0 && this.byOrigin.get(origin) === set) this.byOrigin.delete(origin);
      socket.destroy();
    };
    this.droppers.set(socket, drop);
    socket.on('data', drop).on('end', drop).on('error', drop).on('close', drop).on('timeout', drop);
    socket.setTimeout(IDLE_SOCKET_MS);
    socket.unref();
  }

  destroyAll(): void {
    for (const set of this.byOrigin.values()) for (const s of set) s.destroy();
    this.byOrigin.clear();
  }
}
