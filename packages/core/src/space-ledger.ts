/**
 * Bytes promised to downloads in flight in this process, per filesystem: what its free space is still going to
 * lose. Each fetch counts the others' promises out of the free space it sees, so concurrent misses (a worker
 * runs many) can't each take the same free bytes and fill the disk together. A download's promise shrinks as
 * it writes (its bytes then show in the free space itself).
 */
export class Reservation {
  private written = 0;

  constructor(
    private readonly ledger: Map<number, Set<Reservation>>,
    readonly dev: number,
    private readonly bytes: number,
  ) {
    let set = ledger.get(dev);
    if (!set) ledger.set(dev, (set = new Set()));
    set.add(this);
  }

  /** Bytes still to come. */
  get remaining(): number {
    return Math.max(0, this.bytes - this.written);
  }

  /** The download has written `bytes` in all so far. */
  progress(bytes: number): void {
    this.written = bytes;
  }

  release(): void {
    const set = this.ledger.get(this.dev);
    set?.delete(this);
    if (set?.size === 0) this.ledger.delete(this.dev);
  }
}

const ledger = new Map<number, Set<Reservation>>();

/** Promises `bytes` of filesystem `dev` to a download until released. */
export function reserve(dev: number, bytes: number): Reservation {
  return new Reservation(ledger, dev, bytes);
}

/** Bytes promised on filesystem `dev` and not written yet. */
export function reservedOn(dev: number): number {
  let total = 0;
  for (const r of ledger.get(dev) ?? []) total += r.remaining;
  return total;
}
