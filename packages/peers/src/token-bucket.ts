/**
 * A bandwidth budget shared by every upload of a server: `bytesPerSec` refill, `burst` bytes at most in hand.
 * Bytes are taken before they are sent; the balance may go below zero (a chunk is never split), and the taker
 * waits until it is paid back. Time comes from `now` (milliseconds), so the arithmetic is testable.
 */
export class TokenBucket {
  private balance: number;
  private last: number;
  /** Milliseconds takers were told to wait, in all (how much the cap held uploads back). */
  waitedMs = 0;

  constructor(
    readonly bytesPerSec: number,
    readonly burst = Math.max(16 * 1024, Math.floor(bytesPerSec / 10)),
    private readonly now: () => number = () => performance.now(),
  ) {
    if (!(bytesPerSec > 0)) throw new RangeError(`bytesPerSec must be positive, got ${bytesPerSec}`);
    this.balance = burst;
    this.last = now();
  }

  /** Takes `bytes`; resolves to how many milliseconds to wait before sending them (0: at once). */
  take(bytes: number): number {
    const t = this.now();
    this.balance = Math.min(this.burst, this.balance + ((t - this.last) * this.bytesPerSec) / 1000);
    this.last = t;
    this.balance -= bytes;
    const wait = this.balance >= 0 ? 0 : (-this.balance * 1000) / this.bytesPerSec;
    this.waitedMs += wait;
    return wait;
  }
}
