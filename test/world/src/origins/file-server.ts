import { once } from 'node:events';
import http from 'node:http';
import type net from 'node:net';
import { pipeline } from 'node:stream';
import { generatedRange } from './file-content.ts';

export interface FileServerOptions {
  sizeBytes: number;
  /** Content seed: the same (seed, size) always serves the same bytes. */
  contentSeed: number;
  /** @default 0 */
  port?: number;
  /** @default '127.0.0.1' */
  host?: string;
}

/** A running origin server. */
export interface OriginServer {
  readonly port: number;
  close(): Promise<void>;
}

const LAST_MODIFIED = new Date(Date.UTC(2026, 0, 1)).toUTCString();

/**
 * An HTTP/1.1 file server for one generated file (every path but `/health` serves it):
 * GET and HEAD, a single `Range` (206 with Content-Range, 416 when unsatisfiable; several
 * ranges get the whole file, which RFC 9110 allows), ETag, keep-alive. Streams with
 * backpressure, so a slow client never makes it buffer.
 */
export async function startFileServer(options: FileServerOptions): Promise<OriginServer> {
  const size = options.sizeBytes;
  const etag = `"gen-${options.contentSeed}-${size}"`;
  const server = http.createServer((req, res) => {
    if (req.url === '/health') {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 2 }).end('ok');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-length': 0 }).end();
      return;
    }
    const headers: http.OutgoingHttpHeaders = {
      'content-type': 'application/octet-stream',
      'accept-ranges': 'bytes',
      etag,
      'last-modified': LAST_MODIFIED,
    };
    const range = parseRange(req.headers.range, size);
    if (range === 'unsatisfiable') {
      res.writeHead(416, { ...headers, 'content-range': `bytes */${size}`, 'content-length': 0 });
      res.end();
      return;
    }
    const [start, end] = range ?? [0, size];
    if (range) headers['content-range'] = `bytes ${start}-${end - 1}/${size}`;
    headers['content-length'] = end - start;
    res.writeHead(range ? 206 : 200, headers);
    if (req.method === 'HEAD' || end === start) {
      res.end();
      return;
    }
    pipeline(generatedRange(options.contentSeed, start, end), res, () => {});
  });
  server.keepAliveTimeout = 30_000;
  server.listen(options.port ?? 0, options.host ?? '127.0.0.1');
  await once(server, 'listening');
  return originServer(server);
}

/** `[start, end)` for a single-range header, undefined for none/ignored, or 'unsatisfiable'. */
export function parseRange(
  header: string | undefined,
  size: number,
): [number, number] | 'unsatisfiable' | undefined {
  if (!header) return undefined;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m) return undefined;
  const [, a = '', b = ''] = m;
  if (a === '' && b === '') return undefined;
  if (a === '') {
    const n = Number(b);
    if (n === 0) return 'unsatisfiable';
    return [Math.max(0, size - n), size];
  }
  const start = Number(a);
  if (start >= size) return 'unsatisfiable';
  const end = b === '' ? size : Math.min(size, Number(b) + 1);
  if (end <= start) return undefined;
  return [start, end];
}

export function originServer(server: http.Server | net.Server): OriginServer {
  return {
    port: (server.address() as { port: number }).port,
    async close() {
      const closed = once(server, 'close');
      server.close();
      if ('closeAllConnections' in server) server.closeAllConnections();
      await closed;
    },
  };
}
