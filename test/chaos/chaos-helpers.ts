import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  type NodesReport,
  queryNodes,
  queryRoutes,
  type RoutesReport,
} from '@relaymesh/relay-node';
import {
  generatedBytes,
  logLineReady,
  type Mesh,
  startMesh,
  startWorld,
  type World,
  type WorldHandle,
  type WorldProcess,
} from '@relaymesh/world';

// Shared by the chaos scenarios (test/chaos/*.test.ts) and scripts/soak.mjs's ideas: a
// world with the real mesh on it, continuous traffic with integrity checks, route polling.

/** The compiled CLI: the mesh runs as real processes (`pnpm exec tsc -b` first). */
export const CLI = fileURLToPath(
  new URL('../../packages/relay-node/dist/cli/main.js', import.meta.url),
);
export const TOKEN = 'chaos-suite-cluster-token-0123456789abcdef';
export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export type Route = RoutesReport['routes'][number];

export interface ChaosWorld {
  handle: WorldHandle;
  mesh: Mesh;
  /** The coordinator in use (replaced by {@link restartCoordinator}). */
  coordinator: WorldProcess;
  coordinatorAddress: string;
  /** `--log-level` of the nodes (restarted ones too). */
  nodeLogLevel: string;
}

/**
 * Starts `world` with every link in one egress process (`shared`: 12 regions are one
 * process instead of twelve on a 2-core machine) and the real relaymesh on it, then waits
 * until every node has a route to every origin.
 */
export async function startChaosWorld(
  world: World,
  options: {
    leaseMs?: number;
    /** Coordinator `--settle-rounds` (docs/architecture.md, hysteresis). */
    settleRounds?: number;
    fileSizeBytes?: number;
    logDir?: string;
    nodeLogLevel?: string;
  } = {},
): Promise<ChaosWorld> {
  if (!existsSync(CLI)) throw new Error(`${CLI} missing: run pnpm exec tsc -b`);
  const handle = await startWorld(world, {
    egress: 'shared',
    fileSizeBytes: options.fileSizeBytes ?? 1 << 20,
    ...(options.logDir === undefined ? {} : { logDir: options.logDir }),
  });
  const nodeLogLevel = options.nodeLogLevel ?? 'warn';
  try {
    const mesh = await startMesh(handle, {
      cli: CLI,
      token: TOKEN,
      nodeArgs: ['--debug-headers'],
      logLevel: nodeLogLevel,
      ...(options.leaseMs === undefined ? {} : { leaseMs: options.leaseMs }),
      ...(options.settleRounds === undefined ? {} : { settleRounds: options.settleRounds }),
      readyTimeoutMs: 30_000,
    });
    const cw: ChaosWorld = {
      handle,
      mesh,
      coordinator: mesh.coordinator,
      coordinatorAddress: mesh.coordinatorAddress,
      nodeLogLevel,
    };
    await waitFor('every node has a route to every origin', 45_000, async () =>
      routesWhole(cw, await routes(cw)),
    );
    return cw;
  } catch (err) {
    await handle.close();
    throw err;
  }
}

/** The coordinator's routes (all entries), or [] while it is unreachable. */
export async function routes(cw: ChaosWorld): Promise<Route[]> {
  try {
    const r = await queryRoutes({ address: cw.coordinatorAddress, token: TOKEN, timeoutMs: 2000 });
    return r.routes;
  } catch {
    return [];
  }
}

export async function nodes(cw: ChaosWorld): Promise<NodesReport | undefined> {
  try {
    return await queryNodes({ address: cw.coordinatorAddress, token: TOKEN, timeoutMs: 2000 });
  } catch {
    return undefined;
  }
}

/** Nodes the coordinator reports `up` now (0 when it does not answer). */
export async function nodesUp(cw: ChaosWorld): Promise<number> {
  return (await nodes(cw))?.nodes.filter((x) => x.status === 'up').length ?? 0;
}

/** Every live node of the mesh has a route to every origin of the world. */
export function routesWhole(cw: ChaosWorld, rs: Route[], except: string[] = []): boolean {
  const live = cw.mesh.nodes.filter((n) => !n.process.exited && !except.includes(n.id));
  return live.every((n) =>
    cw.handle.world.origins.every((o) =>
      rs.some((r) => r.from === n.id && r.origin === o.name && r.path.length > 0),
    ),
  );
}

/** Polls `check` every 250 ms until it is true; throws after `ms`. Returns the time taken. */
export async function waitFor(
  what: string,
  ms: number,
  check: () => Promise<boolean> | boolean,
): Promise<number> {
  const started = performance.now();
  for (let i = 0; performance.now() - started < ms && i < 100_000; i++) {
    if (await check()) return performance.now() - started;
    await sleep(250);
  }
  throw new Error(`timed out after ${ms} ms waiting until ${what}`);
}

/** Stops the coordinator (SIGTERM) and, when `restartAfterMs` is given, starts a new one on the same port. */
export async function stopCoordinator(cw: ChaosWorld): Promise<void> {
  await cw.coordinator.stop();
}

/** A new coordinator process on the same address, with the same origins and token. */
export async function restartCoordinator(cw: ChaosWorld): Promise<void> {
  const dir = mkdtempSync(path.join(tmpdir(), 'relaymesh-chaos-'));
  cw.handle.onClose(() => rmSync(dir, { recursive: true, force: true }));
  const config = path.join(dir, 'cluster.yaml');
  writeFileSync(config, JSON.stringify({ token: TOKEN, origins: cw.handle.clusterOrigins() }));
  cw.coordinator = await cw.handle.startProcess({
    name: 'coordinator',
    region: cw.coordinator.spec.region,
    command: process.execPath,
    args: [
      CLI,
      'coordinator',
      ...['--config', config, '--grpc-listen', cw.coordinatorAddress, '--log-level', 'info'],
      ...['--warmup-ms', '1000'],
    ],
    env: { RELAYMESH_TOKEN: TOKEN },
    parseReady: logLineReady('coordinator listening'),
    readyTimeoutMs: 15_000,
    registerPorts: false,
  });
}

/** Starts node `id` again (after a kill) with the arguments `startMesh` used; updates its MeshNode. */
export async function restartNode(cw: ChaosWorld, id: string): Promise<void> {
  const n = cw.mesh.node(id);
  const p = await cw.handle.startProcess({
    name: id,
    region: n.region,
    command: process.execPath,
    args: [
      CLI,
      'node',
      ...['--id', id, '--region', n.region, '--coordinator', cw.coordinatorAddress],
      ...['--tunnel-listen', '127.0.0.1:0', '--http-listen', '127.0.0.1:0'],
      ...['--egress-proxy', cw.handle.proxyUrlFor(n.region)],
      ...['--log-level', cw.nodeLogLevel, '--debug-headers'],
    ],
    env: { RELAYMESH_TOKEN: TOKEN },
    readyTimeoutMs: 30_000,
  });
  const info = p.ready.info as { tunnelPort?: number; httpPort?: number };
  n.process = p;
  n.tunnelPort = info.tunnelPort ?? 0;
  n.httpPort = info.httpPort ?? 0;
}

/** Pids of the world's children that are still running (leak check). */
export function alivePids(pids: number[]): number[] {
  return pids.filter((pid) => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  });
}

/** One request of the continuous traffic. */
export interface Sample {
  seq: number;
  sentAt: number;
  doneAt: number;
  ok: boolean;
  /** A complete body (right length) with wrong bytes: data corruption, never allowed. */
  corrupt: boolean;
  status: number;
  /** `x-relaymesh-path` (debug headers), e.g. `mes1-1,use1-1`. */
  path: string;
  error: string | undefined;
}

export interface TrafficOptions {
  /** Host name of the origin (selects it at the entry). */
  host: string;
  /** HTTP entry port of the entry node. */
  port: number;
  /** Milliseconds between request starts. @default 40 */
  everyMs?: number;
  /** A request not done in this long fails. @default 10000 */
  timeoutMs?: number;
  /** `echo`: POST a random body and compare the echo; `file`: GET a range and compare bytes. */
  kind: 'echo' | 'file';
  /** File origins: content seed and size (for the expected bytes). */
  contentSeed?: number;
  sizeBytes?: number;
}

/**
 * Continuous requests from a client next to the entry: one new request every `everyMs`
 * (not waiting for the previous one), each with its own connection, each checked byte for
 * byte. Bounded: at most 400 requests in flight (a request every 40 ms hung for a 10 s
 * timeout is 250; more is a stall and counts as failures).
 */
export class Traffic {
  readonly samples: Sample[] = [];
  readonly #o: TrafficOptions;
  #timer: NodeJS.Timeout | undefined;
  #inflight = 0;
  #seq = 0;
  readonly #pending = new Set<Promise<void>>();

  constructor(options: TrafficOptions) {
    this.#o = options;
  }

  start(): this {
    this.#timer = setInterval(() => this.#fire(), this.#o.everyMs ?? 40);
    return this;
  }

  /** Stops sending and waits for every request in flight. */
  async stop(): Promise<Sample[]> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    await Promise.all([...this.#pending]);
    return this.samples.sort((a, b) => a.seq - b.seq);
  }

  #fire(): void {
    const seq = this.#seq++;
    if (this.#inflight >= 400) {
      const now = performance.now();
      this.samples.push({
        seq,
        sentAt: now,
        doneAt: now,
        ok: false,
        corrupt: false,
        status: 0,
        path: '',
        error: 'too many in flight',
      });
      return;
    }
    this.#inflight++;
    const p = this.#one(seq).finally(() => {
      this.#inflight--;
      this.#pending.delete(p);
    });
    this.#pending.add(p);
  }

  async #one(seq: number): Promise<void> {
    const sentAt = performance.now();
    const o = this.#o;
    let expect: Buffer;
    let body: Buffer | undefined;
    const headers: Record<string, string> = { host: o.host };
    if (o.kind === 'echo') {
      body = randomBytes(2048);
      expect = body;
      headers['content-type'] = 'application/octet-stream';
    } else {
      const size = o.sizeBytes ?? 1 << 20;
      const start = (seq * 7919 * 64) % Math.max(1, size - 65536);
      expect = await generatedBytes(o.contentSeed ?? 0, start, start + 65536);
      headers.range = `bytes=${start}-${start + 65535}`;
    }
    const r = await request(o.port, headers, body, o.timeoutMs ?? 10_000);
    const same = r.body !== undefined && digest(r.body) === digest(expect);
    const success = r.status === 200 || r.status === 206;
    const ok = success && same;
    const complete = r.body !== undefined && r.body.length === expect.length;
    this.samples.push({
      seq,
      sentAt,
      doneAt: performance.now(),
      ok,
      corrupt: success && complete && !same,
      status: r.status,
      path: r.path,
      error: ok ? undefined : (r.error ?? failure(r.status, complete, same)),
    });
  }
}

function failure(status: number, complete: boolean, same: boolean): string {
  if (status !== 200 && status !== 206) return `status ${status}`;
  if (!complete) return `status ${status}, body cut short`;
  return same ? 'ok' : 'body differs';
}

const digest = (b: Buffer) => createHash('sha256').update(b).digest('hex');

interface Reply {
  status: number;
  path: string;
  body: Buffer | undefined;
  error: string | undefined;
}

function request(
  port: number,
  headers: Record<string, string>,
  body: Buffer | undefined,
  timeoutMs: number,
): Promise<Reply> {
  return new Promise((resolve) => {
    let settled = false;
    const done = (r: Reply) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(r);
    };
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        path: '/chaos',
        method: body ? 'POST' : 'GET',
        headers: body ? { ...headers, 'content-length': String(body.length) } : headers,
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', (err) =>
          done({
            status: res.statusCode ?? 0,
            path: String(res.headers['x-relaymesh-path'] ?? ''),
            body: undefined,
            error: `${err.message} after ${chunks.reduce((n, c) => n + c.length, 0)} bytes`,
          }),
        );
        res.on('end', () =>
          done({
            status: res.statusCode ?? 0,
            path: String(res.headers['x-relaymesh-path'] ?? ''),
            body: Buffer.concat(chunks),
            error: undefined,
          }),
        );
      },
    );
    const timer = setTimeout(() => {
      req.destroy();
      done({ status: 0, path: '', body: undefined, error: `timeout ${timeoutMs} ms` });
    }, timeoutMs);
    req.on('error', (err) => done({ status: 0, path: '', body: undefined, error: err.message }));
    req.end(body);
  });
}

/** How the traffic went around a fault at `faultAt` that takes `victim` off the paths. */
export interface FailoverFigures {
  /** Requests in total, and failed ones. */
  total: number;
  failed: number;
  /** Requests sent before the fault that failed (must be 0: the fault had not happened). */
  failedBeforeFault: number;
  /** From the fault to the completion of the first request that succeeded without `victim`. */
  rerouteMs: number;
  /** From the fault to the start of that request. */
  rerouteSentMs: number;
  /** Requests sent after that first rerouted success that failed (must be 0). */
  failedAfterReroute: number;
  /** Requests in flight around the fault that failed (allowed: no retry at this level). */
  failedInFlight: number;
  /** Errors of the failed requests, counted by message. */
  errors: Record<string, number>;
}

/** Figures of a failover: `avoids(path)` says a successful sample went around the fault. */
export function failoverFigures(
  samples: Sample[],
  faultAt: number,
  avoids: (path: string) => boolean,
): FailoverFigures {
  const firstAround = samples
    .filter((s) => s.ok && s.sentAt >= faultAt && avoids(s.path))
    .sort((a, b) => a.doneAt - b.doneAt)[0];
  const rerouteAt = firstAround?.sentAt ?? Number.POSITIVE_INFINITY;
  const failed = samples.filter((s) => !s.ok);
  const errors: Record<string, number> = {};
  for (const s of failed) {
    const key = (s.error ?? '').slice(0, 60);
    errors[key] = (errors[key] ?? 0) + 1;
  }
  return {
    total: samples.length,
    failed: failed.length,
    failedBeforeFault: failed.filter((s) => s.doneAt < faultAt).length,
    rerouteMs: firstAround ? firstAround.doneAt - faultAt : Number.POSITIVE_INFINITY,
    rerouteSentMs: firstAround ? firstAround.sentAt - faultAt : Number.POSITIVE_INFINITY,
    failedAfterReroute: failed.filter((s) => s.sentAt > rerouteAt).length,
    failedInFlight: failed.filter((s) => s.doneAt >= faultAt && s.sentAt <= rerouteAt).length,
    errors,
  };
}

/** The node ids of a path header `a,b,c`. */
export const hops = (p: string) => (p === '' ? [] : p.split(','));
