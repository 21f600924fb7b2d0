import { SingleBar, Presets } from 'cli-progress';
import type { FetchProgress } from '@imagecache/core';
import { formatSize } from '@imagecache/config';

export interface ProgressReporter {
  update(p: FetchProgress): void;
  stop(): void;
}

/**
 * A progress bar on stderr when it is a terminal; plain lines (at most one a second, and at each stage)
 * otherwise; nothing when `quiet`.
 */
export function createProgress(opts: { quiet: boolean; label: string }): ProgressReporter {
  if (opts.quiet) return { update: () => undefined, stop: () => undefined };
  return process.stderr.isTTY ? barProgress(opts.label) : lineProgress(opts.label);
}

function barProgress(label: string): ProgressReporter {
  const bar = new SingleBar(
    {
      stream: process.stderr,
      format: `${label} {stage} |{bar}| {percentage}% {done}/{all}`,
      hideCursor: true,
      clearOnComplete: true,
    },
    Presets.shades_classic,
  );
  let started = false;
  return {
    update(p) {
      const total = p.totalBytes ?? 0;
      const payload = { stage: p.stage.padEnd(8), done: formatSize(p.bytes ?? 0), all: total ? formatSize(total) : '?' };
      if (!started) {
        bar.start(total || 1, p.bytes ?? 0, payload);
        started = true;
      } else {
        if (total) bar.setTotal(total);
        bar.update(p.bytes ?? (p.stage === 'download' ? 0 : total || 1), payload);
      }
    },
    stop: () => started && bar.stop(),
  };
}

function lineProgress(label: string): ProgressReporter {
  let lastStage = '';
  let lastAt = 0;
  return {
    update(p) {
      const now = Date.now();
      if (p.stage === lastStage && now - lastAt < 1000) return;
      lastStage = p.stage;
      lastAt = now;
      const amount =
        p.bytes === undefined
          ? ''
          : ` ${formatSize(p.bytes)}${p.totalBytes ? ` of ${formatSize(p.totalBytes)} (${Math.floor((100 * p.bytes) / p.totalBytes)}%)` : ''}`;
      process.stderr.write(`${label}: ${p.stage}${amount}\n`);
    },
    stop: () => undefined,
  };
}
