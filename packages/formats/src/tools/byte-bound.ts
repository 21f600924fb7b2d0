/**
 * The most bytes a tool may write, and the error that says so. The caller knows why the bound is what it is
 * (the cache's size, the room on its filesystem), so it makes the error; the tool only measures.
 */
export interface ByteBound {
  bytes: number;
  /** The error to throw once `size` bytes (at least) were seen past the bound. */
  error(size: number): Error;
}
