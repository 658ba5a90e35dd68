import type { Readable } from 'node:stream';

/**
 * A Readable's internal state, as far as dropping its buffer goes (internal to Node, so
 * checked before use): chunks in an array read from `bufferIndex` on (Node 20.20), or a
 * linked list with `clear()` (older releases).
 */
interface ReadableBufferState {
  length: number;
  buffer?: unknown[] | { clear?: () => void };
  bufferIndex?: number;
}

/**
 * Once `stream` has closed, drops the chunks still in its readable buffer. Node keeps a
 * destroyed Readable's buffered chunks for as long as the object is reachable
 * (`destroy()` does not empty the buffer; `read()` still returns them afterwards), and the
 * proxy keeps a stream object after its reset while it waits: a parked response holds its
 * last stream until the client drains or the send timeout. Each held its 64-128 KiB of
 * unread body: ~60 of the 126 MB of ArrayBuffers an entry held for 1,000 parked slow
 * clients (heap snapshot), ~0.6 GB at 10,000, which the GC had to account for on every
 * cycle. Nothing may read a closed stream's data, and `read()` after 'close' emits no
 * 'data'.
 *
 * The buffer is emptied in place where its layout is known: `read()` would join the
 * chunks into one new buffer first, a copy of everything dropped (~72 KiB per parked slow
 * client, measured). Elsewhere, `read()`.
 */
export function dropUnreadOnClose(stream: Readable): void {
  stream.once('close', () => {
    if (stream.readableLength === 0) return;
    const state = (stream as unknown as { _readableState?: ReadableBufferState })._readableState;
    const buffer = state?.buffer;
    if (state && Array.isArray(buffer) && typeof state.bufferIndex === 'number') {
      buffer.length = 0;
      state.bufferIndex = 0;
      state.length = 0;
      return;
    }
    if (state && buffer && !Array.isArray(buffer) && typeof buffer.clear === 'function') {
      buffer.clear();
      state.length = 0;
      return;
    }
    stream.read();
  });
}
