import { once } from 'node:events';
import http from 'node:http';
import type { Endpoint, FaultResult, LinkFault } from './egress-proxy.ts';
import type { LinkDirectionStats } from './link/link-direction.ts';

/** Request bodies larger than this are refused (413). */
const MAX_BODY_BYTES = 64 * 1024;

/** What the control API drives (an EgressProxy). */
export interface ControlTarget {
  applyFault(a: string, b: string, f: LinkFault): FaultResult;
  linkStats(): LinkDirectionStats[];
  setEndpoints(endpoints: Endpoint[]): void;
  endpoints(): Endpoint[];
  readonly maxTimerLateMs: number;
  timerLateness(): { entries: number; over2Ms: number; over10Ms: number; maxMs: number };
}

export interface ControlServer {
  readonly port: number;
  destroy(): void;
}

/**
 * A tiny JSON API on loopback:
 *
 * - `GET  /links` → `{ links: LinkDirectionStats[], maxTimerLateMs, timerLateness }`
 * - `POST /links/{a}/{b}` `{ fault: 'blackhole'|'reset'|'degrade'|'heal', rttMs?, bandwidthBps? }`
 *   → `{ directions, connections }` (404 when this proxy carries no link between a and b)
 * - `GET  /endpoints`, `POST /endpoints` `{ endpoints: [{ host, port, region }] }`
 */
export async function startControlServer(
  target: ControlTarget,
  host: string,
  port: number,
): Promise<ControlServer> {
  const server = http.createServer((req, res) => {
    handle(target, req, res).catch((err: unknown) => send(res, 500, { error: String(err) }));
  });
  server.keepAliveTimeout = 1000;
  server.listen(port, host);
  await once(server, 'listening');
  return {
    port: (server.address() as { port: number }).port,
    destroy() {
      server.close();
      server.closeAllConnections();
    },
  };
}

async function handle(
  target: ControlTarget,
  req: http.IncomingMessage,
  res: http.ServerResponse,
): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://control');
  const parts = url.pathname.split('/').filter(Boolean).map(decodeURIComponent);
  if (req.method === 'GET' && url.pathname === '/links')
    return send(res, 200, {
      links: target.linkStats(),
      maxTimerLateMs: target.maxTimerLateMs,
      timerLateness: target.timerLateness(),
    });
  if (req.method === 'GET' && url.pathname === '/endpoints')
    return send(res, 200, { endpoints: target.endpoints() });
  if (req.method !== 'POST') return send(res, 404, { error: 'not found' });
  const body = await readJson(req);
  if (body === undefined) return send(res, 400, { error: 'body must be JSON up to 64 KiB' });
  if (url.pathname === '/endpoints') {
    const endpoints = (body as { endpoints?: unknown }).endpoints;
    if (!Array.isArray(endpoints) || !endpoints.every(isEndpoint))
      return send(res, 400, { error: 'endpoints must be [{ host, port, region }]' });
    target.setEndpoints(endpoints);
    return send(res, 200, { endpoints: endpoints.length });
  }
  if (parts.length === 3 && parts[0] === 'links') {
    const fault = parseFault(body);
    if (!fault) return send(res, 400, { error: 'fault must be blackhole, reset, degrade or heal' });
    const result = target.applyFault(parts[1]!, parts[2]!, fault);
    return send(res, result.directions === 0 ? 404 : 200, result);
  }
  return send(res, 404, { error: 'not found' });
}

function parseFault(body: unknown): LinkFault | undefined {
  const b = body as { fault?: unknown; rttMs?: unknown; bandwidthBps?: unknown };
  if (b.fault === 'blackhole' || b.fault === 'reset' || b.fault === 'heal')
    return { fault: b.fault };
  if (b.fault !== 'degrade') return undefined;
  const f: LinkFault = { fault: 'degrade' };
  if (typeof b.rttMs === 'number' && b.rttMs >= 0) f.rttMs = b.rttMs;
  if (typeof b.bandwidthBps === 'number' && b.bandwidthBps > 0) f.bandwidthBps = b.bandwidthBps;
  return f;
}

function isEndpoint(e: unknown): e is Endpoint {
  const x = e as Endpoint;
  return typeof x?.host === 'string' && Number.isInteger(x.port) && typeof x.region === 'string';
}

async function readJson(req: http.IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) return undefined;
    chunks.push(chunk);
  }
  try {
    return chunks.length === 0 ? {} : JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    return undefined;
  }
}

function send(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}
