import { createHash, randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { RelayError } from '@relaymesh/shared';
import {
  generatedRange,
  loadWorld,
  type Mesh,
  startMesh,
  startWorld,
  type WorldHandle,
} from '@relaymesh/world';
import { queryRoutes } from '../control/queries.ts';
import { mallocTuningEnv } from '../node/malloc-tuning.ts';
import { type DownloadOptions, type DownloadResult, download } from './download.ts';
import {
  type DemoOutput,
  formatBytes,
  formatDuration,
  formatRate,
  streamOutput,
} from './progress.ts';

/** The seed world's cast (test/world/worlds/seed.yaml). */
const CLIENT_REGION = 'cn-chengdu';
const ENTRY = 'bj-1';
const VIA = 'hk-1';
const ORIGIN = 'files';
const DEGRADED = ['cn-north-1', 'ap-northeast-1'] as const;

/** `relaymesh demo --json`: the documented shape, plus what the story measured on the way. */
export interface DemoSummary {
  direct: { bytesPerSec: number; bytes: number; seconds: number; etaSeconds: number };
  mesh: { bytesPerSec: number; path: string[]; bytes: number; seconds: number; sha256: string };
  speedup: number;
  reroute: {
    /** The coordinator's new route for the entry, and how long after the degrade it came. */
    path: string[];
    afterMs: number;
    /** `x-relaymesh-path` of a new request after the change. */
    requestPath: string[];
    /** The download that was running during the change: finished intact on its old path. */
    runningDownload: { bytes: number; bytesPerSec: number; path: string[]; intact: boolean };
    /** The same bytes downloaded again after the change, on the new path. */
    newDownload: { bytes: number; bytesPerSec: number; path: string[] };
  };
  fileBytes: number;
  totalSeconds: number;
}

export interface DemoOptions {
  /** The compiled CLI the world runs as coordinator and nodes. @default {@link SUPERVISED_CLI} */
  cli?: string;
  /** Size of the Tokyo file (the mesh leg downloads all of it). @default 64 MiB */
  fileSizeBytes?: number;
  /** How long the direct download is measured (it would take hours to finish). @default 8000 */
  directMs?: number;
  /** Beijing-Tokyo after the degrade. `bandwidthBps` in bits/s, as the world's link profiles. @default { rttMs: 250, bandwidthBps: 20e6 } */
  degrade?: { rttMs: number; bandwidthBps: number };
  /** How long to wait for the first route. @default 30000 */
  routeTimeoutMs?: number;
  /**
   * How long to wait for the route to move after the degrade. When the entry is also the
   * exit, only its origin probes (every 5 s, smoothed) see the degrade: 3-28 s measured.
   * @default 45000
   */
  rerouteTimeoutMs?: number;
  /** Human output. @default nothing */
  output?: DemoOutput;
  /** Aborting tears the world down and rejects with ERR_DEMO_FAILED. */
  signal?: AbortSignal;
}

/** packages/relay-node/dist/cli/main.js, from src/demo/ (tests) and from dist/demo/ alike. */
export const DEFAULT_CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));

/**
 * The same CLI through `dist/demo/supervised-main.js`, which also stops when its stdin
 * closes: what the demo runs as coordinator and nodes, so a killed demo leaves nothing.
 */
export const SUPERVISED_CLI = fileURLToPath(
  new URL('../../dist/demo/supervised-main.js', import.meta.url),
);

interface Stage {
  handle: WorldHandle;
  mesh: Mesh;
  token: string;
  out: DemoOutput;
  options: DemoOptions;
  fileBytes: number;
  contentSeed: number;
}

const fail = (message: string, cause?: unknown) =>
  new RelayError('ERR_DEMO_FAILED', message, cause === undefined ? {} : { cause });

/**
 * Runs the seed story: starts the seed world with the real coordinator and nodes, measures
 * the Chengdu client's direct rate to the Tokyo file, downloads it through the Beijing
 * entry (sha256 checked), degrades Beijing-Tokyo and shows the route move through Hong
 * Kong while a download continues. Everything it started is stopped before it returns.
 *
 * @throws ERR_DEMO_FAILED (no route in time, a download failed or arrived corrupted,
 *   aborted), ERR_WORLD_PROCESS (a world process did not start).
 */
export async function runDemo(options: DemoOptions = {}): Promise<DemoSummary> {
  const started = performance.now();
  const out = options.output ?? streamOutput(process.stderr, { tty: false, quiet: true });
  const fileBytes = options.fileSizeBytes ?? 64 * 1024 * 1024;
  out.line(
    `Starting the seed world (Chengdu client; nodes in Beijing, Hong Kong, Tokyo; a ${formatBytes(fileBytes)} file in Tokyo)...`,
  );
  const handle = await startWorld(loadWorld('seed'), { fileSizeBytes: fileBytes });
  // One close for both ways out: handle.close() returns at once when a close is running.
  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= handle.close();
    return closing;
  };
  const onAbort = () => void close();
  options.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    if (options.signal?.aborted) throw fail('demo aborted');
    const token = randomBytes(24).toString('hex');
    const mesh = await startMesh(handle, {
      cli: options.cli ?? SUPERVISED_CLI,
      token,
      nodeArgs: ['--debug-headers'],
      // As docs/operations.md has nodes started: glibc keeps the freed socket buffers.
      nodeEnv: mallocTuningEnv(),
    });
    const contentSeed = handle.originAddress(ORIGIN).contentSeed;
    const stage: Stage = { handle, mesh, token, out, options, fileBytes, contentSeed };
    const summary = await tellStory(stage);
    return { ...summary, totalSeconds: (performance.now() - started) / 1000 };
  } catch (err) {
    if (options.signal?.aborted) throw fail('demo aborted', err);
    throw err;
  } finally {
    options.signal?.removeEventListener('abort', onAbort);
    out.line('Stopping the world...');
    await close();
  }
}

async function tellStory(s: Stage): Promise<Omit<DemoSummary, 'totalSeconds'>> {
  const routeTimeoutMs = s.options.routeTimeoutMs ?? 30_000;
  s.out.line(
    `Coordinator at ${s.mesh.coordinatorAddress}; nodes ${s.mesh.nodes.map((n) => n.id).join(', ')}. Waiting for routes...`,
  );
  const route = await waitForRoute(s, () => true, routeTimeoutMs);
  s.out.line(
    `Coordinator's route from ${ENTRY} to ${ORIGIN}: ${describePath(route.path)} (${route.rttMs.toFixed(1)} ms)`,
  );
  const direct = await directLeg(s);
  const mesh = await meshLeg(s);
  const speedup = direct.bytesPerSec > 0 ? mesh.bytesPerSec / direct.bytesPerSec : 0;
  s.out.line(`Speedup: ${speedup.toFixed(0)}x`);
  const reroute = await rerouteLeg(s, s.options.rerouteTimeoutMs ?? 45_000);
  return { direct, mesh, speedup, reroute, fileBytes: s.fileBytes };
}

interface Route {
  path: string[];
  rttMs: number;
}

/** Polls the coordinator (its gRPC API, as `relaymesh routes` does) until `accept` holds. */
async function waitForRoute(
  s: Stage,
  accept: (r: Route) => boolean,
  timeoutMs: number,
): Promise<Route> {
  const deadline = performance.now() + timeoutMs;
  let last: Route | undefined;
  for (let i = 0; performance.now() < deadline && i < 1000; i++) {
    if (s.options.signal?.aborted) throw fail('demo aborted');
    const report = await queryRoutes(
      { address: s.mesh.coordinatorAddress, token: s.token, timeoutMs: 2000 },
      { from: ENTRY, origin: ORIGIN },
    ).catch(() => undefined);
    const r = report?.routes.find((x) => x.from === ENTRY && x.origin === ORIGIN);
    if (r) last = { path: r.path, rttMs: r.rttMs };
    if (last && accept(last)) return last;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw fail(
    `no suitable route from ${ENTRY} to ${ORIGIN} within ${timeoutMs} ms (last: ${last?.path.join('>') ?? 'none'})`,
  );
}

function client(s: Stage, port: number, extra: Partial<DownloadOptions>): DownloadOptions {
  const host = s.handle.originAddress(ORIGIN).hosts[0] ?? '';
  return {
    dialer: s.handle.dialerFor(CLIENT_REGION),
    port,
    hostHeader: host,
    ...(s.options.signal ? { signal: s.options.signal } : {}),
    ...extra,
  };
}

async function directLeg(s: Stage): Promise<DemoSummary['direct']> {
  const maxMs = s.options.directMs ?? 8000;
  s.out.line('');
  s.out.line(
    `1. Direct: Chengdu -> Tokyo across the border (measured for ${formatDuration(maxMs)}, not finished)`,
  );
  const bar = s.out.progress('direct', s.fileBytes);
  const origin = s.handle.originAddress(ORIGIN);
  const r = await download(client(s, origin.port, { maxMs, onProgress: (b) => bar.update(b) }));
  if (r.status !== 200) throw fail(`direct download answered ${r.status}`);
  const etaSeconds = r.bytesPerSec > 0 ? s.fileBytes / r.bytesPerSec : Number.POSITIVE_INFINITY;
  bar.done(
    `direct: ${formatBytes(r.bytes)} in ${formatDuration(r.totalMs)} at ${formatRate(r.bytesPerSec)}; the whole file would take ${formatDuration(etaSeconds * 1000)}`,
  );
  return { bytesPerSec: r.bytesPerSec, bytes: r.bytes, seconds: r.totalMs / 1000, etaSeconds };
}

async function meshLeg(s: Stage): Promise<DemoSummary['mesh']> {
  s.out.line('');
  s.out.line(`2. Through the mesh: Chengdu -> ${ENTRY} (Beijing entry) -> ... -> Tokyo`);
  const bar = s.out.progress('mesh', s.fileBytes);
  const entry = s.mesh.node(ENTRY);
  const r = await download(client(s, entry.httpPort, { onProgress: (b) => bar.update(b) }));
  const expected = await rangeSha256(s.contentSeed, 0, s.fileBytes);
  if (r.status !== 200 || !r.complete || r.bytes !== s.fileBytes)
    throw fail(`mesh download answered ${r.status} with ${r.bytes} of ${s.fileBytes} bytes`);
  if (r.sha256 !== expected) throw fail(`mesh download sha256 ${r.sha256} is not ${expected}`);
  bar.done(
    `mesh: ${formatBytes(r.bytes)} in ${formatDuration(r.totalMs)} at ${formatRate(r.bytesPerSec)}, sha256 ok, path ${describePath(r.path)}`,
  );
  return {
    bytesPerSec: r.bytesPerSec,
    path: r.path,
    bytes: r.bytes,
    seconds: r.totalMs / 1000,
    sha256: r.sha256,
  };
}

/** `bj-1 > tokyo-1`; a one-node path says that the entry fetched from the origin itself. */
export function describePath(path: readonly string[]): string {
  if (path.length === 1) return `${path[0]} (the entry is also the exit)`;
  return path.join(' > ');
}

/** sha256 of bytes [start, end) of the generated file. */
export async function rangeSha256(seed: number, start: number, end: number): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of generatedRange(seed, start, end)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

async function rerouteLeg(s: Stage, timeoutMs: number): Promise<DemoSummary['reroute']> {
  const degrade = s.options.degrade ?? { rttMs: 250, bandwidthBps: 20e6 };
  // A quarter of the file: long enough to still run when the route moves (8-13 s after the
  // degrade) on a 20 Mbit/s link, short enough to keep the demo well under 90 s.
  const part = Math.floor(s.fileBytes / 4);
  s.out.line('');
  s.out.line(
    `3. Beijing <-> Tokyo degrades to ${degrade.rttMs} ms RTT, ${formatRate(degrade.bandwidthBps / 8)}, while a download of ${formatBytes(part)} runs`,
  );
  const running = startRunning(s, part);
  await running.flowing;
  const t0 = performance.now();
  await s.handle.controlLinks(DEGRADED[0], DEGRADED[1], { fault: 'degrade', ...degrade });
  const route = await waitForRoute(s, (r) => r.path.includes(VIA), timeoutMs);
  const afterMs = performance.now() - t0;
  s.out.line(
    `   the coordinator moved the route after ${formatDuration(afterMs)}: ${route.path.join(' > ')} (${route.rttMs.toFixed(1)} ms)`,
  );
  const requestPath = await newRequestPath(s);
  s.out.line(
    `   a new request now takes ${requestPath.join(' > ')}; the running download stays on its path`,
  );
  const r = await running.done;
  const intact = await intactRange(s, r, part);
  if (!intact)
    throw fail(`the running download ended with ${r.status}, ${r.bytes} of ${part} bytes`);
  running.bar.done(
    `running: ${formatBytes(r.bytes)} in ${formatDuration(r.totalMs)} at ${formatRate(r.bytesPerSec)}, sha256 ok, path ${describePath(r.path)}`,
  );
  const fresh = await freshDownload(s, part);
  return {
    path: route.path,
    afterMs,
    requestPath,
    runningDownload: { bytes: r.bytes, bytesPerSec: r.bytesPerSec, path: r.path, intact },
    newDownload: { bytes: fresh.bytes, bytesPerSec: fresh.bytesPerSec, path: fresh.path },
  };
}

/** The first `part` bytes through the entry; `flowing` resolves after 1 MiB (or at the end). */
function startRunning(s: Stage, part: number) {
  const bar = s.out.progress('running', part);
  let onFlowing: () => void = () => {};
  const flowing = new Promise<void>((resolve) => {
    onFlowing = resolve;
  });
  const done = download(
    client(s, s.mesh.node(ENTRY).httpPort, {
      range: { start: 0, end: part - 1 },
      timeoutMs: 120_000,
      onProgress: (b) => {
        bar.update(b);
        if (b >= 1 << 20) onFlowing();
      },
    }),
  );
  // Awaited by the caller; a failure before that must not count as unhandled.
  done.then(onFlowing, onFlowing);
  return { bar, flowing, done };
}

async function intactRange(s: Stage, r: DownloadResult, bytes: number): Promise<boolean> {
  return (
    r.status === 206 &&
    r.complete &&
    r.bytes === bytes &&
    r.sha256 === (await rangeSha256(s.contentSeed, 0, bytes))
  );
}

/** The same range again, now on the new path: the rate the reroute saves. */
async function freshDownload(s: Stage, part: number): Promise<DownloadResult> {
  const bar = s.out.progress('new', part);
  const r = await download(
    client(s, s.mesh.node(ENTRY).httpPort, {
      range: { start: 0, end: part - 1 },
      onProgress: (b) => bar.update(b),
    }),
  );
  if (!(await intactRange(s, r, part)))
    throw fail(`the download on the new path ended with ${r.status}, ${r.bytes} of ${part} bytes`);
  bar.done(
    `new: ${formatBytes(r.bytes)} in ${formatDuration(r.totalMs)} at ${formatRate(r.bytesPerSec)}, sha256 ok, path ${describePath(r.path)}`,
  );
  return r;
}

/** A short Range request through the entry until it takes the new path (the node gets the table a moment after the coordinator has it). */
async function newRequestPath(s: Stage): Promise<string[]> {
  let path: string[] = [];
  for (let i = 0; i < 40; i++) {
    const r = await download(
      client(s, s.mesh.node(ENTRY).httpPort, {
        range: { start: 0, end: 65_535 },
        timeoutMs: 10_000,
      }),
    );
    path = r.path;
    if (r.status === 206 && path.includes(VIA)) return path;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw fail(`new requests through ${ENTRY} still take ${path.join('>')} after the route changed`);
}

/** The closing table of the demo. */
export function renderSummary(d: DemoSummary): string {
  const rows: [string, string][] = [
    [
      'direct (Chengdu -> Tokyo)',
      `${formatRate(d.direct.bytesPerSec)}, whole file in ${formatDuration(d.direct.etaSeconds * 1000)}`,
    ],
    [
      `mesh (${d.mesh.path.join(' > ')})`,
      `${formatRate(d.mesh.bytesPerSec)}, whole file in ${formatDuration(d.mesh.seconds * 1000)}, sha256 ok`,
    ],
    ['speedup', `${d.speedup.toFixed(0)}x`],
    [
      'after Beijing-Tokyo degraded',
      `route ${d.reroute.path.join(' > ')} after ${formatDuration(d.reroute.afterMs)}`,
    ],
    [
      'download during the change',
      `${formatBytes(d.reroute.runningDownload.bytes)} intact on ${d.reroute.runningDownload.path.join(' > ')} at ${formatRate(d.reroute.runningDownload.bytesPerSec)}`,
    ],
    [
      'the same after the change',
      `${formatRate(d.reroute.newDownload.bytesPerSec)} on ${d.reroute.newDownload.path.join(' > ')}`,
    ],
    ['demo took', formatDuration(d.totalSeconds * 1000)],
  ];
  const width = Math.max(...rows.map(([k]) => k.length));
  return ['Summary', ...rows.map(([k, v]) => `  ${k.padEnd(width)}  ${v}`)].join('\n');
}

/** The `--json` document: the shape first, then the rest of the measurements. */
export function summaryJson(d: DemoSummary): string {
  const { direct, mesh, speedup, ...rest } = d;
  return JSON.stringify({ direct, mesh, speedup, ...rest });
}
