import type { Readable } from 'node:stream';

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
 */
export function dropUnreadOnClose(stream: Readable): void {
  stream.once('close', () => {
    if (stream.readableLength > 0) stream.read();
  });
}
