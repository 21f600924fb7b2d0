import { performance } from 'node:perf_hooks';
import type { FetchProgress, FetchResult, FetchStage } from './result';

/** What every stage of one fetch reports to: its durations, and the caller's progress callback. */
export interface StageSink {
  durations: FetchResult['durations'];
  onProgress?: (progress: FetchProgress) => void;
}

export interface StageOptions {
  /** What the caller is told as the stage starts (default `{ stage }`). */
  progress?: FetchProgress;
  /** A cancelled fetch starts no further stage: the signal's reason is thrown instead. */
  signal?: AbortSignal;
}

/**
 * Runs one stage of a fetch: stops first if the fetch was cancelled, tells the caller the stage started, and
 * adds the stage's time to `durations` (a stage run twice, such as a retried link, adds up).
 */
export async function runStage<T>(
  sink: StageSink,
  stage: FetchStage,
  fn: () => T | Promise<T>,
  opts: StageOptions = {},
): Promise<T> {
  opts.signal?.throwIfAborted();
  sink.onProgress?.(opts.progress ?? { stage });
  const t = performance.now();
  try {
    return await fn();
  } finally {
    sink.durations[stage] = (sink.durations[stage] ?? 0) + (performance.now() - t);
  }
}

/** The stages a preparation reports as it goes (it knows which it needs only once it has looked). */
const TIMED_BY_PROGRESS: ReadonlySet<FetchStage> = new Set(['decompress', 'inspect', 'convert']);

/**
 * Times the stages a step reports through its progress (decompress, inspect, convert): each lasts until the
 * next one starts, the last until `stop()`.
 */
export class ProgressClock {
  private readonly starts: [FetchStage, number][] = [];

  constructor(private readonly sink: StageSink) {}

  readonly onProgress = (p: FetchProgress): void => {
    if (TIMED_BY_PROGRESS.has(p.stage)) this.mark(p.stage);
    this.sink.onProgress?.(p);
  };

  stop(): void {
    const ready = performance.now();
    this.starts.forEach(
      ([stage, t], i) => (this.sink.durations[stage] = (this.starts[i + 1]?.[1] ?? ready) - t),
    );
  }

  private mark(stage: FetchStage): void {
    // A stage reported twice keeps its last start, as the stage's own record did.
    const i = this.starts.findIndex(([s]) => s === stage);
    if (i >= 0) this.starts.splice(i, 1);
    this.starts.push([stage, performance.now()]);
  }
}
