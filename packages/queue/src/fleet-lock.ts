import { randomBytes } from 'node:crypto';
import type { RedisClient } from './connection';
import { fleetImageKey, type FleetImageId } from './fleet-directory';
import { keys } from './names';

/** Life of a claim without a beat: a dead holder's is taken over this long after its last beat at most. */
export const DEFAULT_FLEET_LOCK_TTL_MS = 15_000;
/** How often a waiting host looks whether the holder is done. */
const POLL_MS = 250;

const REFRESH = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end return 0`;
const RELEASE = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0`;

export type FleetLockClaim = { owner: true; release(): Promise<void> } | { owner: false };

/**
 * The fleet-wide single flight of an image: one key per image identity (SET NX PX), held by the host that
 * downloads it from the origin and refreshed every third of its TTL while it does; released (only by its
 * holder's token) once the master is published. Another host asking meanwhile waits until the key is gone,
 * released or expired (a dead holder), and is then told so: it looks for the holder's master among the peers,
 * and claims again only if there is none.
 */
export class FleetLock {
  constructor(
    private readonly redis: RedisClient,
    private readonly prefix: string,
    private readonly ttlMs = DEFAULT_FLEET_LOCK_TTL_MS,
    private readonly onLost?: (id: FleetImageId) => void,
  ) {}

  async claim(id: FleetImageId, holder: string, signal?: AbortSignal): Promise<FleetLockClaim> {
    const key = keys.fleetLock(this.prefix, fleetImageKey(id));
    const token = `${holder}:${randomBytes(8).toString('hex')}`;
    if ((await this.redis.set(key, token, 'PX', this.ttlMs, 'NX')) === 'OK') return this.held(id, key, token);
    while ((await this.redis.exists(key)) === 1) {
      await sleep(POLL_MS, signal);
      signal?.throwIfAborted();
    }
    return { owner: false };
  }

  private held(id: FleetImageId, key: string, token: string): FleetLockClaim {
    const timer = setInterval(
      () => {
        this.redis
          .eval(REFRESH, 1, key, token, String(this.ttlMs))
          .then((ok) => {
            if (ok === 0) {
              clearInterval(timer);
              this.onLost?.(id);
            }
          })
          .catch(() => undefined); // Redis away: tried again at the next beat
      },
      Math.max(50, Math.floor(this.ttlMs / 3)),
    );
    timer.unref();
    return {
      owner: true,
      release: async () => {
        clearInterval(timer);
        await this.redis.eval(RELEASE, 1, key, token);
      },
    };
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => (clearTimeout(t), resolve()), { once: true });
  });
}
