import { createHash, randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';
import type { MuxStream, Session } from '../../src/index.ts';

/** Rejects after `ms` unless `p` settles first. */
export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e) => {
        clearTimeout(t);
        reject(e);
      },
    );
  });
}

/** Reads a stream to its end. */
export function collect(stream: Duplex, ms = 10_000): Promise<Buffer> {
  const chunks: Buffer[] = [];
  return within(
    new Promise<Buffer>((resolve, reject) => {
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.once('end', () => resolve(Buffer.concat(chunks)));
      stream.once('error', reject);
    }),
    ms,
    'collect',
  );
}

/** Reads to the end and returns byte count and sha256, without keeping the bytes. */
export function digest(stream: Duplex, ms = 20_000): Promise<{ bytes: number; sha256: string }> {
  const h = createHash('sha256');
  let bytes = 0;
  return within(
    new Promise((resolve, reject) => {
      stream.on('data', (c: Buffer) => {
        bytes += c.length;
        h.update(c);
      });
      stream.once('end', () => resolve({ bytes, sha256: h.digest('hex') }));
      stream.once('error', reject);
    }),
    ms,
    'digest',
  );
}

export function sha256(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

export function random(n: number): Buffer {
  return randomBytes(n);
}

/** Writes `data` in `chunk`-sized writes honouring backpressure, then ends. */
export async function writeAll(stream: Duplex, data: Buffer, chunk = 64 * 1024): Promise<void> {
  for (let off = 0; off < data.length; off += chunk) {
    if (!stream.write(data.subarray(off, off + chunk))) {
      await within(
        new Promise<void>((resolve, reject) => {
          const onDrain = () => {
            stream.off('close', onClose);
            resolve();
          };
          const onClose = () => {
            stream.off('drain', onDrain);
            reject(new Error('stream closed while waiting for drain'));
          };
          stream.once('drain', onDrain);
          stream.once('close', onClose);
        }),
        20_000,
        'drain',
      );
    }
  }
  stream.end();
}

/** The next inbound stream of `session`. */
export function nextStream(session: Session, ms = 5000): Promise<MuxStream> {
  return within(
    new Promise<MuxStream>((resolve) => session.once('stream', resolve)),
    ms,
    'inbound stream',
  );
}

/** Resolves with the error the stream is destroyed with (rejects if it closes cleanly). */
export function streamError(stream: Duplex, ms = 5000): Promise<Error> {
  return within(
    new Promise<Error>((resolve, reject) => {
      stream.once('error', resolve);
      stream.once('close', () => {
        if (stream.errored) resolve(stream.errored);
        else reject(new Error('stream closed without error'));
      });
    }),
    ms,
    'stream error',
  );
}

/** Resolves on 'close'. */
export function closed(emitter: Duplex | Session, ms = 5000): Promise<void> {
  return within(
    new Promise<void>((resolve) => emitter.once('close', () => resolve())),
    ms,
    'close',
  );
}

/** Polls `cond` every few ms until true (bounded by `ms`). */
export async function until(cond: () => boolean, ms = 5000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

export const tick = (ms = 20) => new Promise((r) => setTimeout(r, ms));
