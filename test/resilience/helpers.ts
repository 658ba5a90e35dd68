import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

// Real `relaymesh coordinator` and `relaymesh node` processes on loopback for the
// resilience suite. They run the compiled CLI: `pnpm exec tsc -b` first.
export const CLI = fileURLToPath(
  new URL('../../packages/relay-node/dist/cli/main.js', import.meta.url),
);
export const TOKEN = 'resilience-test-token-0123456789abcdef';
export const ORIGIN_HOST = 'files.resilience.test';
const ENV = { ...process.env, RELAYMESH_TOKEN: TOKEN };

/** Polls `fn` every 20 ms until it returns a truthy value; fails after `timeoutMs`. */
export async function waitFor<T>(
  fn: () => T | undefined | false | Promise<T | undefined | false>,
  timeoutMs: number,
  what: string,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (let i = 0; i < 100_000; i++) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

export interface NodeProc {
  id: string;
  child: ChildProcess;
  httpPort: number;
  tunnelPort: number;
  stderr: () => string;
  exited: Promise<number | null>;
}

/** The processes of one test cluster; `close()` kills whatever is still running. */
export class Cluster {
  readonly dir = mkdtempSync(path.join(tmpdir(), 'relaymesh-resilience-'));
  readonly #children = new Set<ChildProcess>();
  readonly #closers: Array<() => unknown> = [];
  coordinator = '';

  constructor() {
    if (!existsSync(CLI)) throw new Error(`${CLI} missing: run pnpm exec tsc -b`);
  }

  onClose(fn: () => unknown): void {
    this.#closers.push(fn);
  }

  #spawn(args: string[], stdout: 'pipe' | 'ignore' = 'pipe'): ChildProcess {
    const child = spawn(process.execPath, [CLI, ...args], {
      env: ENV,
      stdio: ['ignore', stdout, 'pipe'],
    });
    this.#children.add(child);
    child.once('exit', () => this.#children.delete(child));
    return child;
  }

  /** Starts the coordinator for one origin (fast warm-up, report and recompute periods). */
  async startCoordinator(originPort: number): Promise<string> {
    const cfg = path.join(this.dir, 'cluster.yaml');
    writeFileSync(
      cfg,
      `origins:\n  - name: files\n    hosts: [${ORIGIN_HOST}]\n    upstreams: ["http://127.0.0.1:${originPort}"]\n`,
    );
    const child = this.#spawn([
      'coordinator',
      ...['--config', cfg, '--grpc-listen', '127.0.0.1:0', '--log-level', 'info'],
      ...['--warmup-ms', '0', '--report-interval-ms', '300', '--recompute-interval-ms', '200'],
    ]);
    let out = '';
    child.stdout?.on('data', (d) => {
      out += d;
    });
    child.stderr?.on('data', () => {});
    this.coordinator = await waitFor(
      () => /"address":"([^"]+)"/.exec(out)?.[1],
      10_000,
      'coordinator listening',
    );
    return this.coordinator;
  }

  /** Starts `relaymesh node --id id` and waits for its ready line. */
  async startNode(id: string, extra: string[] = []): Promise<NodeProc> {
    const child = this.#spawn([
      'node',
      ...['--id', id, '--region', `r-${id}`, '--coordinator', this.coordinator],
      ...['--tunnel-listen', '127.0.0.1:0', '--http-listen', '127.0.0.1:0'],
      ...['--debug-headers', '--log-level', 'warn'],
      ...extra,
    ]);
    let out = '';
    let err = '';
    child.stdout?.on('data', (d) => {
      out += d;
    });
    child.stderr?.on('data', (d) => {
      err = (err + d).slice(-20_000);
    });
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    const line = await waitFor(
      () => {
        if (child.exitCode !== null) throw new Error(`node ${id} exited ${child.exitCode}: ${err}`);
        return out.includes('\n') ? out.split('\n')[0] : undefined;
      },
      10_000,
      `node ${id} ready`,
    );
    const ready = JSON.parse(line as string) as { httpPort: number; tunnelPort: number };
    return {
      id,
      child,
      httpPort: ready.httpPort,
      tunnelPort: ready.tunnelPort,
      stderr: () => err,
      exited,
    };
  }

  async close(): Promise<void> {
    for (const c of [...this.#children]) {
      if (c.exitCode !== null || c.signalCode !== null) continue;
      const exited = new Promise((r) => c.once('exit', r));
      c.kill('SIGKILL');
      await exited;
    }
    for (const close of this.#closers) await close();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** An origin on 127.0.0.1:0: `/any?n=N&delay=MS` answers N bytes of 'x' after MS ms. */
export async function startSmallOrigin(): Promise<{ port: number; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    const q = new URL(req.url ?? '/', 'http://x').searchParams;
    const n = Number(q.get('n') ?? '16');
    const delayMs = Number(q.get('delay') ?? '0');
    setTimeout(() => {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': n });
      res.end(Buffer.alloc(n, 'x'));
    }, delayMs);
  });
  server.keepAliveTimeout = 10_000;
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

export { startBlockingProxy } from '@relaymesh/shared/testing';
