import type { ChildProcess } from 'node:child_process';

/**
 * The long-lived processes tests start (Redis nodes, worker replicas, the API): each is killed when the test
 * process exits, and by `killStarted`. A suite whose set-up fails half-way (one replica up, the other not) has
 * no handle on what did start; left running, such a process kept a CI run waiting until its 90 minutes ran out.
 */
const started = new Set<ChildProcess>();
let exitHook = false;

/** Records `child` until it exits; returns it. */
export function track<C extends ChildProcess>(child: C): C {
  started.add(child);
  const gone = () => started.delete(child);
  child.once('exit', gone);
  child.once('error', gone);
  if (!exitHook) {
    exitHook = true;
    process.once('exit', () => {
      for (const c of started) c.kill('SIGKILL');
    });
  }
  return child;
}

/** Kills (SIGKILL) every tracked process still running and resolves once all have exited, or after `ms`. */
export async function killStarted(ms = 10_000): Promise<void> {
  const exits = [...started].map(
    (c) =>
      new Promise<void>((resolve) => {
        if (c.exitCode !== null || c.signalCode !== null) return resolve();
        c.once('exit', () => resolve());
        c.kill('SIGKILL');
      }),
  );
  await settleWithin(Promise.all(exits), ms);
}

/**
 * Runs each of `steps` (a tear-down's) to its end or for `ms` at most, all of them whatever the others do;
 * resolves with the failures' and time-outs' messages. A tear-down step that hangs (a close waiting on a server
 * that never came up) must not hold the rest, nor the run.
 */
export async function settleAll(steps: (() => unknown)[], ms: number): Promise<string[]> {
  const outcomes = await Promise.all(
    steps.map((step) =>
      settleWithin(Promise.resolve().then(step), ms).then(
        (done) => (done ? undefined : `a tear-down step took over ${ms} ms: ${String(step).slice(0, 80)}`),
        (err: unknown) => (err instanceof Error ? err.message : String(err)),
      ),
    ),
  );
  return outcomes.filter((o): o is string => o !== undefined);
}

/** Resolves true once `p` resolves, false after `ms`; rejects with `p`'s error. */
function settleWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p.then(() => true),
    new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), ms))),
  ]).finally(() => clearTimeout(timer));
}
