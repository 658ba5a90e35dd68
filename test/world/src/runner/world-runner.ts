import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  type Dialer,
  HttpConnectDialer,
  type HttpConnectDialerOptions,
  type Logger,
  RelayError,
  silentLogger,
} from '@relaymesh/shared';
import {
  type EgressProxy,
  type Endpoint,
  type FaultResult,
  type LinkFault,
  type LinkSpec,
  startEgressProxy,
} from '../egress-proxy.ts';
import type { LinkDirectionStats } from '../link/link-direction.ts';
import type { OriginServer } from '../origins/file-server.ts';
import { type OriginConfig, startOrigin } from '../origins/start-origin.ts';
import type { World, WorldOrigin } from '../world/types.ts';
import { type ProcessSpec, WorldProcess } from './world-process.ts';

/** Compiled process entries (the root `pnpm test` runs `tsc -b` first). */
const DIST_BIN = fileURLToPath(new URL('../../dist/bin/', import.meta.url));

export interface StartWorldOptions {
  /** Run egress proxies and origins inside this process (fast tests). @default false */
  inProcess?: boolean;
  /**
   * `per-region`: one egress proxy process per region, as in a real deployment. `shared`:
   * one process serves every region's listener, so both ends of a link share one bucket.
   * @default 'per-region'
   */
  egress?: 'per-region' | 'shared';
  /** Start no origins. @default false */
  skipOrigins?: boolean;
  /** Overrides every file origin's size (tests want small files). */
  fileSizeBytes?: number;
  /** Started in order after proxies and origins; their ready ports join the endpoint table. */
  processes?: ProcessSpec[];
  /** Ready deadline of each child process. @default 10000 */
  readyTimeoutMs?: number;
  /** Each child process's output goes to `<logDir>/<name>.log` too (appended). @default none */
  logDir?: string;
  logger?: Logger;
}

/** Where a running origin listens. */
export interface OriginAddress extends WorldOrigin {
  host: string;
  port: number;
  /** `http://127.0.0.1:PORT` for file and http origins, `tcp://127.0.0.1:PORT` for tcp ones. */
  url: string;
}

/** One entry of a cluster config's `origins:` list, as the coordinator reads it. */
export interface ClusterOrigin {
  name: string;
  hosts: string[];
  upstreams: string[];
  healthCheck?: { path: string };
}

interface ProxyHandle {
  regions: string[];
  ports: Record<string, number>;
  controlPort: number;
  close(): Promise<void>;
}

/**
 * Starts a world on loopback: egress proxies (the WAN links), origins, then any extra
 * processes (coordinator, nodes), each waited for with a deadline. On any failure
 * everything started so far is stopped before the error is thrown.
 *
 * @throws ERR_WORLD_PROCESS (a process failed to start), ERR_WORLD_CONFIG (dist/ missing).
 */
export async function startWorld(
  world: World,
  options: StartWorldOptions = {},
): Promise<WorldHandle> {
  const handle = new WorldHandle(world, options);
  try {
    await handle.start();
  } catch (err) {
    await handle.close();
    throw err;
  }
  return handle;
}

/** A running world. Close it (tests: in afterEach/afterAll) to leave nothing behind. */
export class WorldHandle {
  readonly world: World;
  readonly origins: OriginAddress[] = [];
  readonly processes: WorldProcess[] = [];
  readonly #options: StartWorldOptions;
  readonly #log: Logger;
  readonly #proxies: ProxyHandle[] = [];
  readonly #inProcess: (OriginServer | EgressProxy)[] = [];
  readonly #endpoints: Endpoint[] = [];
  readonly #onClose: (() => void)[] = [];
  #closed = false;

  constructor(world: World, options: StartWorldOptions) {
    this.world = world;
    this.#options = options;
    this.#log = (options.logger ?? silentLogger()).child({ component: 'world-runner' });
  }

  /** @internal called by startWorld */
  async start(): Promise<void> {
    const started = performance.now();
    if (!this.#options.inProcess && !existsSync(`${DIST_BIN}egress-proxy.js`))
      throw new RelayError(
        'ERR_WORLD_CONFIG',
        `no compiled entries in ${DIST_BIN}: run tsc -b first`,
      );
    const groups =
      this.#options.egress === 'shared'
        ? [this.world.regions.map((r) => r.id)]
        : this.world.regions.map((r) => [r.id]);
    // allSettled, not all: a start still in flight when another fails must finish (and be
    // recorded) before close() runs, or its process would be left behind.
    const results = await Promise.allSettled([
      ...groups.map((g) => this.#startProxy(g)),
      ...(this.#options.skipOrigins ? [] : this.world.origins.map((o) => this.#startOrigin(o))),
    ]);
    const failed = results.find((r) => r.status === 'rejected');
    if (failed) throw failed.reason;
    const order = this.world.origins.map((o) => o.name);
    this.origins.sort((a, b) => order.indexOf(a.name) - order.indexOf(b.name));
    await this.#pushEndpoints();
    for (const spec of this.#options.processes ?? []) await this.startProcess(spec);
    this.#log.info(
      { world: this.world.name, durationMs: performance.now() - started },
      'world ready',
    );
  }

  /** The `--egress-proxy` URL for processes in `region`. */
  proxyUrlFor(region: string): string {
    const p = this.#proxies.find((x) => x.regions.includes(region));
    const port = p?.ports[region];
    if (port === undefined)
      throw new RelayError('ERR_WORLD_CONFIG', `no egress proxy for region ${region}`);
    return `http://127.0.0.1:${port}`;
  }

  /** A Dialer that connects from `region` (through its egress proxy), e.g. for a test client. */
  dialerFor(region: string, options: HttpConnectDialerOptions = {}): Dialer {
    return new HttpConnectDialer(this.proxyUrlFor(region), options);
  }

  originAddress(name: string): OriginAddress {
    const o = this.origins.find((x) => x.name === name);
    if (!o)
      throw new RelayError('ERR_WORLD_CONFIG', `world ${this.world.name} has no origin ${name}`);
    return o;
  }

  /** Starts a process (coordinator, node, tool) and adds its ports to the endpoint table. */
  async startProcess(spec: ProcessSpec): Promise<WorldProcess> {
    const p = await WorldProcess.start(
      this.#withLog({
        ...spec,
        readyTimeoutMs: spec.readyTimeoutMs ?? this.#options.readyTimeoutMs ?? 10_000,
      }),
    );
    this.processes.push(p);
    if (spec.registerPorts !== false) {
      await this.registerEndpoints(
        p.ready.ports.map((port) => ({ host: '127.0.0.1', port, region: spec.region })),
      );
    }
    return p;
  }

  /** Tells every egress proxy which region these addresses belong to. */
  async registerEndpoints(endpoints: Endpoint[]): Promise<void> {
    this.#endpoints.push(...endpoints);
    await this.#pushEndpoints();
  }

  /** Applies a fault to the link between regions `a` and `b` in every proxy that carries it. */
  async controlLinks(a: string, b: string, fault: LinkFault): Promise<FaultResult> {
    const results = await Promise.all(
      this.#proxies.map(async (p) => {
        const r = await fetch(`http://127.0.0.1:${p.controlPort}/links/${a}/${b}`, {
          method: 'POST',
          body: JSON.stringify(fault),
        });
        const body = (await r.json()) as FaultResult;
        return r.status === 200 ? body : { directions: 0, connections: 0 };
      }),
    );
    return results.reduce((s, r) => ({
      directions: s.directions + r.directions,
      connections: s.connections + r.connections,
    }));
  }

  /** Stats of every link direction in every proxy. */
  async linkStats(): Promise<(LinkDirectionStats & { proxyRegions: string[] })[]> {
    const all = await Promise.all(
      this.#proxies.map(async (p) => {
        const r = await fetch(`http://127.0.0.1:${p.controlPort}/links`);
        const body = (await r.json()) as { links: LinkDirectionStats[] };
        return body.links.map((l) => ({ ...l, proxyRegions: p.regions }));
      }),
    );
    return all.flat();
  }

  /** Every egress proxy: the regions it serves, their listener ports, its control API port. */
  proxies(): { regions: string[]; ports: Record<string, number>; controlPort: number }[] {
    return this.#proxies.map(({ regions, ports, controlPort }) => ({
      regions,
      ports,
      controlPort,
    }));
  }

  /**
   * The `origins:` section of a cluster config (coordinator) for this running world: each
   * origin's names and its one upstream (`http://` for file and http origins, with a
   * `/health` check; `tcp://` for tcp origins).
   */
  clusterOrigins(): ClusterOrigin[] {
    return this.origins.map((o) => {
      const base = { name: o.name, hosts: o.hosts, upstreams: [o.url] };
      return o.kind === 'tcp' ? base : { ...base, healthCheck: { path: '/health' } };
    });
  }

  /** Pids of every child process still owned by the world. */
  pids(): number[] {
    return this.#children().map((p) => p.pid);
  }

  /** Stops everything (SIGTERM, SIGKILL after a grace) and waits until all of it is gone. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    // Clients of the links first, then the links themselves.
    await Promise.all(this.processes.map((p) => p.stop()));
    await Promise.all([
      ...this.#children().map((p) => p.stop()),
      ...this.#inProcess.map((s) => s.close()),
    ]);
    for (const fn of this.#onClose.splice(0)) fn();
  }

  /** Runs `fn` at the end of {@link close} (temp files of processes started for the world). */
  onClose(fn: () => void): void {
    this.#onClose.push(fn);
  }

  #children(): WorldProcess[] {
    return [...this.processes, ...this.#originProcs, ...this.#proxyProcs];
  }

  /** `spec` with its log file under {@link StartWorldOptions.logDir}, when one is set. */
  #withLog(spec: ProcessSpec): ProcessSpec {
    const dir = this.#options.logDir;
    return dir === undefined || spec.logFile !== undefined
      ? spec
      : { ...spec, logFile: path.join(dir, `${spec.name}.log`) };
  }

  readonly #originProcs: WorldProcess[] = [];
  readonly #proxyProcs: WorldProcess[] = [];

  async #startProxy(regions: string[]): Promise<void> {
    const links: LinkSpec[] = this.world.links
      .filter((l) => regions.includes(l.from) || regions.includes(l.to))
      .map(({ from, to, rttMs, bandwidthBps, jitter }) => ({
        from,
        to,
        rttMs,
        bandwidthBps,
        jitter,
      }));
    const config = { regions, links, seed: this.world.seed };
    if (this.#options.inProcess) {
      const proxy = await startEgressProxy({ ...config, logger: this.#log });
      this.#inProcess.push(proxy);
      this.#proxies.push({
        regions,
        ports: proxy.ports,
        controlPort: proxy.controlPort,
        close: () => proxy.close(),
      });
      return;
    }
    const p = await WorldProcess.start(
      this.#withLog({
        name: `egress-${regions.join('+')}`,
        region: regions[0] ?? '',
        command: process.execPath,
        args: [`${DIST_BIN}egress-proxy.js`, JSON.stringify(config), '--exit-with-parent'],
        readyTimeoutMs: this.#options.readyTimeoutMs ?? 10_000,
      }),
    );
    this.#proxyProcs.push(p);
    const info = p.ready.info as { ports: Record<string, number>; controlPort: number };
    this.#proxies.push({
      regions,
      ports: info.ports,
      controlPort: info.controlPort,
      close: () => p.stop(),
    });
  }

  async #startOrigin(origin: WorldOrigin): Promise<void> {
    const config: OriginConfig = {
      kind: origin.kind,
      sizeBytes: this.#options.fileSizeBytes ?? origin.sizeBytes,
      contentSeed: origin.contentSeed,
    };
    let port: number;
    if (this.#options.inProcess) {
      const server = await startOrigin(config);
      this.#inProcess.push(server);
      port = server.port;
    } else {
      const p = await WorldProcess.start(
        this.#withLog({
          name: `origin-${origin.name}`,
          region: origin.region,
          command: process.execPath,
          args: [`${DIST_BIN}origin.js`, JSON.stringify(config), '--exit-with-parent'],
          readyTimeoutMs: this.#options.readyTimeoutMs ?? 10_000,
        }),
      );
      this.#originProcs.push(p);
      port = p.ready.ports[0] ?? 0;
    }
    this.origins.push({
      ...origin,
      sizeBytes: config.sizeBytes ?? origin.sizeBytes,
      host: '127.0.0.1',
      port,
      url: `${origin.kind === 'tcp' ? 'tcp' : 'http'}://127.0.0.1:${port}`,
    });
    this.#endpoints.push({ host: '127.0.0.1', port, region: origin.region });
  }

  async #pushEndpoints(): Promise<void> {
    const body = JSON.stringify({ endpoints: this.#endpoints });
    await Promise.all(
      this.#proxies.map(async (p) => {
        const r = await fetch(`http://127.0.0.1:${p.controlPort}/endpoints`, {
          method: 'POST',
          body,
        });
        await r.body?.cancel();
        if (r.status !== 200)
          throw new RelayError(
            'ERR_WORLD_PROCESS',
            `egress proxy ${p.regions.join('+')} refused endpoints: ${r.status}`,
          );
      }),
    );
  }
}
