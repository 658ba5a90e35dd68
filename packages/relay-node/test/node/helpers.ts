import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createDialer, type Dialer, RelayError } from '@relaymesh/shared';

export const TOKEN = 'node-test-token-0123456789abcdef';
export const ORIGIN_HOST = 'files.example.test';

/** Polls `fn` every 20 ms until it returns a truthy value; fails after `timeoutMs`. */
export async function waitFor<T>(
  fn: () => T | undefined | false | Promise<T | undefined | false>,
  timeoutMs = 8000,
  what = 'condition',
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (let i = 0; i < 10_000; i++) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

/** A test origin answering `origin:<url path>` (`/slow...` after 400 ms, `/hang...` never). */
export async function startOrigin(): Promise<{ port: number; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    // /slow answers after 400 ms: a request in flight while a node shuts down; /hang never.
    if (req.url?.startsWith('/hang')) return;
    const delay = req.url?.startsWith('/slow') ? 400 : 0;
    setTimeout(() => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end(`origin:${req.url}`);
    }, delay);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}

/** A direct dialer with a firewall: connections to `blockedPorts` are refused. */
export function blockingDialer(...blockedPorts: number[]): Dialer {
  const inner = createDialer();
  return {
    description: `direct, ports ${blockedPorts.join(',')} blocked`,
    dial(target, options) {
      if (blockedPorts.includes(target.port)) {
        return Promise.reject(new RelayError('ERR_DIAL_REFUSED', `port ${target.port} blocked`));
      }
      return inner.dial(target, options);
    },
  };
}

/** GET through an entry: status, body and the path header. */
export function get(
  entryPort: number,
  urlPath: string,
  host = ORIGIN_HOST,
): Promise<{ status: number; body: string; path: string | undefined; error?: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port: entryPort, path: urlPath, headers: { host }, agent: false },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d) => {
          body += d;
        });
        res.on('end', () => {
          const path = res.headers['x-relaymesh-path'];
          const error = res.headers['x-relaymesh-error'];
          resolve({
            status: res.statusCode ?? 0,
            body,
            path: typeof path === 'string' ? path : undefined,
            ...(typeof error === 'string' ? { error } : {}),
          });
        });
      },
    );
    req.setTimeout(5000, () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end();
  });
}

export { startBlockingProxy } from '@relaymesh/shared/testing';
