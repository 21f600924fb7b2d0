import type * as fs from 'node:fs';
import type { Writable } from 'node:stream';

/** Size of each of the two buffers an upload reads into. */
export const SEND_CHUNK = 1 << 20;

/**
 * Sends bytes `start`..`end` (inclusive) of an opened file to `out`, then ends it. Two buffers, reused: each is read
 * into, written, and read into again once the socket has taken it (the write's callback), so an upload holds 2 MiB
 * whatever the file's size and allocates nothing per chunk (a stream's fresh buffer per read costs page faults and
 * GC on every chunk: a peer upload ran at 0.8× nginx that way). Rejects when the file ends early, a read fails or
 * `out` fails or closes before the end (ERR_STREAM_PREMATURE_CLOSE).
 */
export async function sendFile(
  handle: fs.promises.FileHandle,
  start: number,
  end: number,
  out: Writable,
  onBytes: (n: number) => void,
): Promise<void> {
  const closed = new Promise<never>((_, reject) =>
    out.once('close', () => {
      const err = new Error('the client went away') as NodeJS.ErrnoException;
      err.code = 'ERR_STREAM_PREMATURE_CLOSE';
      reject(err);
    }),
  );
  closed.catch(() => undefined);
  const buffers = [Buffer.allocUnsafeSlow(SEND_CHUNK), Buffer.allocUnsafeSlow(SEND_CHUNK)];
  const taken: (Promise<void> | undefined)[] = [undefined, undefined];
  let position = start;
  let i = 0;
  while (position <= end) {
    if (taken[i]) await Promise.race([taken[i], closed]);
    const want = Math.min(SEND_CHUNK, end - position + 1);
    const { bytesRead } = await Promise.race([handle.read(buffers[i]!, 0, want, position), closed]);
    if (bytesRead === 0) throw new Error(`the file ended at ${position}, before byte ${end}`);
    position += bytesRead;
    onBytes(bytesRead);
    const chunk = buffers[i]!.subarray(0, bytesRead);
    taken[i] = new Promise<void>((resolve, reject) =>
      out.write(chunk, (err) => (err ? reject(err) : resolve())),
    );
    taken[i]!.catch(() => undefined);
    i ^= 1;
  }
  await Promise.race([Promise.all(taken), closed]);
  await Promise.race([new Promise<void>((resolve) => out.end(resolve)), closed]);
}
