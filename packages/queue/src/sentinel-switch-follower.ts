import { Redis } from 'ioredis';

interface SentinelTarget {
  sentinels: { host: string; port: number }[];
  name: string;
}

/**
 * Moves a process's connections to a Sentinel-watched master over to the new master as soon as the sentinels
 * announce a switch (`+switch-master`), one subscription per sentinel shared by every connection of the process.
 *
 * Why: after a failover whose old master is still up (a planned `SENTINEL FAILOVER`, a partition), the old master
 * goes on taking writes from the connections it has until the sentinels turn it into a replica, at least 8 s
 * later; those writes (jobs added, completions) are then thrown away with its data. ioredis asks the sentinels
 * again only when a connection drops, and its own `failoverDetector` can leave a connection ended for good when
 * it fires while that connection is looking for the master (seen with ioredis 5.11 and a killed master).
 * Only connections that are up are dropped here; ioredis reconnects them through the sentinels, which name the
 * new master by then.
 */
export class SentinelSwitchFollower {
  private static readonly followers = new Map<string, SentinelSwitchFollower>();

  private readonly clients = new Set<Redis>();
  private readonly subscribers: Redis[];
  private lastSwitch = '';

  /** Registers `client` (a connection to `target`'s master) until it ends. */
  static follow(client: Redis, target: SentinelTarget): void {
    const key = `${target.name}@${target.sentinels.map((s) => `${s.host}:${s.port}`).join(',')}`;
    let follower = SentinelSwitchFollower.followers.get(key);
    if (!follower) {
      follower = new SentinelSwitchFollower(key, target);
      SentinelSwitchFollower.followers.set(key, follower);
    }
    follower.add(client);
  }

  private constructor(
    private readonly key: string,
    private readonly target: SentinelTarget,
  ) {
    this.subscribers = target.sentinels.map((s) => {
      const sub = new Redis({ host: s.host, port: s.port, maxRetriesPerRequest: null });
      sub.on('error', () => undefined);
      sub.on('message', (_channel: string, message: string) => this.switched(message));
      void sub.subscribe('+switch-master').catch(() => undefined);
      return sub;
    });
  }

  private add(client: Redis): void {
    this.clients.add(client);
    client.once('end', () => {
      this.clients.delete(client);
      if (this.clients.size > 0) return;
      SentinelSwitchFollower.followers.delete(this.key);
      for (const s of this.subscribers) s.disconnect();
    });
  }

  /** `<name> <old-ip> <old-port> <new-ip> <new-port>`, once from each sentinel: acted on once. */
  private switched(message: string): void {
    if (message.split(' ')[0] !== this.target.name || message === this.lastSwitch) return;
    this.lastSwitch = message;
    for (const c of this.clients) if (c.status === 'ready') c.disconnect(true);
  }
}
