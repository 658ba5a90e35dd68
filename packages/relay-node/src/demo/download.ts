import { createHash } from 'node:crypto';
import http from 'node:http';
import type { Dialer } from '@relaymesh/shared';
import { RelayError } from '@relaymesh/shared';

/** One HTTP GET of the demo: a client in one region, through that region's egress proxy. */
export interface DownloadOptions {
  /** The client's dialer (`handle.dialerFor(region)`). */
  dialer: Dialer;
  /** Where the client connects: the origin itself (direct) or an entry node's HTTP port. */
  port: number;
  /** `Host` header: the origin's declared host name. */
  hostHeader: string;
  /** @default '/file' */
  path?: string;
  /** `Range: bytes=start-end` (inclusive), for short requests. */
  range?: { start: number; end: number };
  /** Stop after this long (the direct download is measured, not finished). @default no limit */
  maxMs?: number;
  /** Whole-request deadline (connect, head, body). @default 60000 */
  timeoutMs?: number;
  /** Called with the bytes received so far, at most once per chunk. */
  onProgress?: (bytes: number) => void;
  signal?: AbortSignal;
}

export interface DownloadResult {
  status: number;
  bytes: number;
  /** The whole body arrived (false when `maxMs` cut it). */
  complete: boolean;
  /** From the first body byte to the last (set-up excluded: the rate is the link's). */
  bytesPerSec: number;
  /** From the connect to the end, ms. */
  totalMs: number;
  /** sha256 of the bytes received, hex. */
  sha256: string;
  /** `x-relaymesh-path` split on commas; [] when absent (direct). */
  path: string[];
  /** `x-relaymesh-error` of an error answer (the entry's error code), if any. */
  error?: string;
}

const demoError = (message: string, cause?: unknown) =>
  new RelayError('ERR_DEMO_FAILED', message, cause === undefined ? {} : { cause });

/**
 * GETs `path` with `Host: hostHeader` on 127.0.0.1:`port` through `dialer`. Resolves when
 * the body ends or `maxMs` passed (then `complete: false`).
 *
 * @throws ERR_DEMO_FAILED on a connection error, a truncated body or the deadline; the
 *   dialer's ERR_DIAL_* when the connection cannot be made.
 */
export async function download(options: DownloadOptions): Promise<DownloadResult> {
  const started = performance.now();
  const timeoutMs = options.timeoutMs ?? 60_000;
  const socket = await options.dialer.dial(
    { host: '127.0.0.1', port: options.port },
    {
      timeoutMs: Math.min(timeoutMs, 15_000),
    },
  );
  return new Promise<DownloadResult>((resolve, reject) => {
    const hash = createHash('sha256');
    let bytes = 0;
    let firstAt = 0;
    let settled = false;
    const headers: http.OutgoingHttpHeaders = { host: options.hostHeader };
    if (options.range) headers.range = `bytes=${options.range.start}-${options.range.end}`;
    const finish = (err: Error | undefined, result?: Omit<DownloadResult, 'sha256'>) => {
      if (settled) return;
      settled = true;
      clearTimeout(deadline);
      clearTimeout(cut);
      options.signal?.removeEventListener('abort', onAbort);
      socket.destroy();
      if (err || !result) reject(err ?? demoError('download ended without a result'));
      else resolve({ ...result, sha256: hash.digest('hex') });
    };
    const onAbort = () => finish(demoError('download aborted'));
    options.signal?.addEventListener('abort', onAbort, { once: true });
    const deadline = setTimeout(
      () => finish(demoError(`download on port ${options.port} took over ${timeoutMs} ms`)),
      timeoutMs,
    ).unref();
    let cut: NodeJS.Timeout | undefined;
    const req = http.request(
      { createConnection: () => socket, path: options.path ?? '/file', headers },
      (res) => {
        const path = String(res.headers['x-relaymesh-path'] ?? '')
          .split(',')
          .filter((s) => s !== '');
        const status = res.statusCode ?? 0;
        const error = res.headers['x-relaymesh-error'];
        const result = (complete: boolean): Omit<DownloadResult, 'sha256'> => {
          const bodySecs = firstAt === 0 ? 0 : (performance.now() - firstAt) / 1000;
          return {
            status,
            bytes,
            complete,
            bytesPerSec: bodySecs > 0 ? bytes / bodySecs : 0,
            totalMs: performance.now() - started,
            path,
            ...(typeof error === 'string' ? { error } : {}),
          };
        };
        if (options.maxMs !== undefined) {
          cut = setTimeout(() => finish(undefined, result(false)), options.maxMs).unref();
        }
        res.on('data', (d: Buffer) => {
          if (firstAt === 0) firstAt = performance.now();
          bytes += d.length;
          hash.update(d);
          options.onProgress?.(bytes);
        });
        res.on('end', () => finish(undefined, result(true)));
        res.on('error', (err) =>
          finish(demoError(`download body failed after ${bytes} bytes: ${err.message}`, err)),
        );
        res.on('close', () => {
          if (!res.complete) finish(demoError(`download cut after ${bytes} bytes`));
        });
      },
    );
    req.on('error', (err) =>
      finish(demoError(`request on port ${options.port} failed: ${err.message}`, err)),
    );
    req.end();
  });
}
