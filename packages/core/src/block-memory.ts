import { allocSharedBuffer } from '@imagecache/checksum';

// The project's lib has no WebAssembly types; this is the one constructor used.
declare const WebAssembly: {
  Memory: new (d: { initial: number; maximum: number; shared: true }) => { buffer: SharedArrayBuffer };
};

/** Bytes per WebAssembly memory page. */
const WASM_PAGE = 65536;

/** `count` blocks of `size` bytes, and whether each starts on a page boundary (what O_DIRECT needs). */
export interface Blocks {
  readonly blocks: Buffer[];
  readonly aligned: boolean;
}

/**
 * Shared blocks for a download (a hashing thread reads them in place), page-aligned when asked and possible: a
 * SharedArrayBuffer's allocator promises 16 bytes of alignment, a shared WebAssembly.Memory is mapped on page
 * boundaries (V8 reserves it whole, with guard pages: address space only). Nothing is touched here: a block's
 * pages cost the process only when bytes land in them. `size` must be a multiple of 64 KiB for the aligned kind.
 */
export function allocBlocks(count: number, size: number, aligned: boolean): Blocks {
  if (aligned && size % WASM_PAGE === 0) {
    try {
      const pages = (count * size) / WASM_PAGE;
      const { buffer } = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
      return {
        blocks: Array.from({ length: count }, (_, i) => Buffer.from(buffer, i * size, size)),
        aligned: true,
      };
    } catch {
      // no address space for it (a ulimit -v): plain shared memory, written through the page cache
    }
  }
  return { blocks: Array.from({ length: count }, () => allocSharedBuffer(size)), aligned: false };
}
