import type * as CliProgress from 'cli-progress';
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
  // Loaded for a terminal only: a script's or a quiet run's start-up doesn't pay for it.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { SingleBar, Presets } = require('cli-progress') as typeof CliProgress;
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
  let bytes = 0;
  let total = 0;
  return {
    update(p) {
      // Stages after the download carry no byte counts: the bar keeps what it showed.
      bytes = p.bytes ?? bytes;
      total = p.totalBytes ?? total;
      const payload = {
        stage: p.stage.padEnd(10),
        done: formatSize(bytes),
        all: total ? formatSize(total) : '?',
      };
      if (!started) {
        bar.start(total || 1, bytes, payload);
        started = true;
        return;
      }
      if (total) bar.setTotal(total);
      bar.update(bytes, payload);
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
