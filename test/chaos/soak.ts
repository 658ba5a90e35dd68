// The chaos soak (run through scripts/soak.mjs, not part of `pnpm test`): the aws12 world
// with the real mesh, continuous traffic from three entries with every body checked, and
// a random fault every few seconds for N minutes: kill -9 a node (restarted 8-15 s
// later), blackhole a link (healed 4-8 s later), double a link's RTT (healed 10 s later),
// restart the coordinator. Prints one JSON line per fault and a summary line at the end.
// Exit code 1 when a request failed outside a fault's window or a body was corrupted.
// `--coordinator-outage S`: the coordinator is stopped at the first fault and stays down S
// seconds while the other faults go on (a killed node is restarted only once it is back:
// a new node can register with nothing else), then it is restarted and the time until every
// live node re-registered and the routes are whole again is printed.
import { mkdirSync } from 'node:fs';
import { loadWorld } from '@relaymesh/world';
import {
  type ChaosWorld,
  nodesUp,
  type Route,
  restartCoordinator,
  restartNode,
  routes,
  routesWhole,
  type Sample,
  sleep,
  startChaosWorld,
  stopCoordinator,
  Traffic,
  waitFor,
} from './chaos-helpers.ts';
import { regionRtt } from './optimum.ts';

interface Args {
  minutes: number;
  seed: number;
  /** Every process's log goes to a file here (nodes at `info`). */
  logDir: string | undefined;
  /**
   * Entries to send from (instead of the three with the longest routes), each to the file
   * origin it reaches on the shortest route: `afs1-1,mec1-1` exercise the entry as its own
   * exit (the origin is in its region), which the default choice never does.
   */
  entries: string[] | undefined;
  /** Seconds the coordinator stays down from the first fault (0: only short restarts). */
  coordinatorOutageS: number;
}

function parseArgs(argv: string[]): Args {
  const args: Args = {
    minutes: 5,
    seed: Date.now() % 100_000,
    logDir: undefined,
    entries: undefined,
    coordinatorOutageS: 0,
  };
  for (let i = 0; i < argv.length; i++) {
    const v = Number(argv[i + 1]);
    if (argv[i] === '--log-dir' && argv[i + 1]) args.logDir = argv[i + 1];
    if (argv[i] === '--entries' && argv[i + 1]) args.entries = argv[i + 1]?.split(',');
    if (argv[i] === '--minutes' && v > 0 && v <= 120) args.minutes = v;
    if (argv[i] === '--seed' && Number.isInteger(v)) args.seed = v;
    if (argv[i] === '--coordinator-outage') {
      if (!(Number.isInteger(v) && v >= 0 && v <= 3600))
        throw new Error(`--coordinator-outage ${argv[i + 1]}: expected whole seconds, 0-3600`);
      args.coordinatorOutageS = v;
    }
  }
  if (args.coordinatorOutageS > args.minutes * 60)
    throw new Error(
      `--coordinator-outage ${args.coordinatorOutageS}: longer than the run (--minutes ${args.minutes})`,
    );
  return args;
}

/** xorshift32: the same seed gives the same fault sequence (timing still varies). */
function rng(seed: number): () => number {
  let x = seed || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}

interface FaultWindow {
  kind: string;
  what: string;
  at: number;
  /** Failures of requests in flight at the fault or sent before it is detected are expected. */
  until: number;
}

const out = (o: Record<string, unknown>) => process.stdout.write(`${JSON.stringify(o)}\n`);

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const random = rng(args.seed);
  const pick = <T>(xs: T[]): T => xs[Math.floor(random() * xs.length)] as T;
  const started = new Date().toISOString();
  if (args.logDir !== undefined) mkdirSync(args.logDir, { recursive: true });
  const cw = await startChaosWorld(
    loadWorld('aws12'),
    args.logDir === undefined ? {} : { logDir: args.logDir, nodeLogLevel: 'info' },
  );
  const t0 = performance.now();
  const since = () => Math.round(performance.now() - t0);
  try {
    const rs = await routes(cw);
    // Three entries with relayed routes where possible; they are never killed themselves.
    const chosen = args.entries ? chosenEntries(cw, rs, args.entries) : longestRoutes(rs);
    const entries = chosen.map((r) => r.from);
    const traffic = chosen.map((r) => {
      const o = cw.handle.originAddress(r.origin);
      return new Traffic({
        host: o.hosts[0] as string,
        port: cw.mesh.node(r.from).httpPort,
        kind: o.kind === 'file' ? 'file' : 'echo',
        contentSeed: o.contentSeed,
        sizeBytes: o.sizeBytes,
        everyMs: 100,
      }).start();
    });
    out({
      soak: 'start',
      started,
      ...args,
      // Wall clock of t = 0, to line the `t` fields up with the processes' logs.
      t0EpochMs: Math.round(Date.now() - (performance.now() - t0)),
      entries,
      routes: chosen.map((r) => r.path),
    });
    const windows: FaultWindow[] = [];
    const dead = new Set<string>();
    const pending: Promise<void>[] = [];
    const deadline = performance.now() + args.minutes * 60_000;
    let faults = 0;
    // The long outage (--coordinator-outage): resolves once the coordinator is back.
    let outage: Promise<void> | undefined;
    let coordinatorDown = false;
    for (; performance.now() < deadline && faults < 10_000; faults++) {
      await sleep(3000 + random() * 5000);
      if (performance.now() >= deadline) break;
      if (args.coordinatorOutageS > 0 && !outage) {
        const at = performance.now();
        coordinatorDown = true;
        await stopCoordinator(cw);
        windows.push({ kind: 'coordinator-outage', what: 'coordinator', at, until: at }); // nothing may fail because of it
        out({ t: since(), fault: 'coordinator-down', forS: args.coordinatorOutageS });
        outage = sleep(args.coordinatorOutageS * 1000).then(async () => {
          await restartCoordinator(cw);
          coordinatorDown = false;
          const downMs = Math.round(performance.now() - at);
          const live = () => cw.mesh.nodes.filter((n) => !n.process.exited).length;
          const registeredMs = await waitFor(
            'every live node re-registered',
            60_000,
            async () => (await nodesUp(cw)) >= live(),
          ).catch(() => -1);
          const wholeMs = await waitFor('routes whole again', 60_000, async () =>
            routesWhole(cw, await routes(cw)),
          ).catch(() => -1);
          out({
            t: since(),
            fault: 'coordinator-back',
            downMs,
            reregisteredMs: Math.round(registeredMs),
            routesWholeMs: Math.round(wholeMs),
          });
        });
        pending.push(outage);
        continue;
      }
      const kinds = ['kill', 'kill', 'blackhole', 'blackhole', 'degrade', 'coordinator'];
      const kind = pick(coordinatorDown ? kinds.slice(0, -1) : kinds);
      const at = performance.now();
      if (kind === 'kill') {
        const victims = cw.mesh.nodes.filter((n) => !entries.includes(n.id) && !dead.has(n.id));
        if (dead.size >= 2 || victims.length === 0) continue;
        const v = pick(victims);
        v.process.kill();
        dead.add(v.id);
        windows.push({ kind, what: v.id, at, until: at + 1500 });
        out({ t: since(), fault: 'kill', node: v.id });
        const back = 8000 + random() * 7000;
        // During the long outage the node comes back only after the coordinator.
        const restartable = coordinatorDown ? outage : undefined;
        pending.push(
          Promise.all([sleep(back), restartable])
            .then(() => restartNode(cw, v.id))
            .then(() => {
              dead.delete(v.id);
              out({ t: since(), fault: 'restarted', node: v.id });
            }),
        );
      } else if (kind === 'blackhole' || kind === 'degrade') {
        const regions = cw.mesh.nodes.map((n) => n.region);
        const a = pick(regions);
        const b = pick(regions.filter((x) => x !== a));
        const fault =
          kind === 'blackhole'
            ? { fault: 'blackhole' as const }
            : { fault: 'degrade' as const, rttMs: 2 * regionRtt(cw.handle.world, a, b) };
        await cw.handle.controlLinks(a, b, fault);
        // A blackhole is found by the keepalive in 3-4 s; a degrade fails no request.
        windows.push({
          kind,
          what: `${a}<->${b}`,
          at,
          until: at + (kind === 'blackhole' ? 5000 : 0),
        });
        const healIn = kind === 'blackhole' ? 4000 + random() * 4000 : 10_000;
        out({ t: since(), fault: kind, link: `${a}<->${b}`, healInMs: Math.round(healIn) });
        pending.push(
          sleep(healIn).then(async () => {
            await cw.handle.controlLinks(a, b, { fault: 'heal' });
          }),
        );
      } else {
        await stopCoordinator(cw);
        await sleep(1000 + random() * 4000);
        await restartCoordinator(cw);
        windows.push({ kind, what: 'coordinator', at, until: at }); // nothing may fail because of it
        out({
          t: since(),
          fault: 'coordinator-restart',
          downMs: Math.round(performance.now() - at),
        });
      }
    }
    await Promise.allSettled(pending);
    const perEntry = await Promise.all(traffic.map((t) => t.stop()));
    const samples = perEntry.flatMap((list, i) => list.map((x) => ({ ...x, entry: entries[i] })));
    await waitFor('routes whole at the end', 30_000, async () =>
      routesWhole(cw, await routes(cw)),
    ).catch(() => out({ warning: 'routes not whole at the end' }));
    summarize(args, started, faults, windows, samples, t0);
  } finally {
    await cw.handle.close();
  }
}

/** Three entries with relayed routes where possible. */
function longestRoutes(rs: Route[]): Route[] {
  return [...rs]
    .sort((a, b) => b.path.length - a.path.length)
    .filter((r, i, all) => all.findIndex((x) => x.from === r.from) === i)
    .slice(0, 3);
}

/** The given entries, each with its shortest route to a file origin. */
function chosenEntries(cw: ChaosWorld, rs: Route[], entries: string[]): Route[] {
  const files = new Set(
    cw.handle.world.origins.filter((o) => o.kind === 'file').map((o) => o.name),
  );
  return entries.map((id) => {
    const r = rs
      .filter((x) => x.from === id && files.has(x.origin))
      .sort((a, b) => a.path.length - b.path.length)[0];
    if (!r) throw new Error(`no route from ${id} to a file origin`);
    return r;
  });
}

function summarize(
  args: Args,
  started: string,
  faults: number,
  windows: FaultWindow[],
  samples: (Sample & { entry?: string | undefined })[],
  t0: number,
): void {
  const failed = samples.filter((s) => !s.ok);
  // In flight at a fault (sent before it, done after it) or sent inside its window.
  const explains = (w: FaultWindow, s: Sample) =>
    s.sentAt <= w.until && s.doneAt >= w.at && w.until > w.at;
  const explained = (s: Sample) => windows.some((w) => explains(w, s));
  const unexplained = failed.filter((s) => !explained(s));
  const corrupt = samples.filter((s) => s.corrupt).length;
  const counts: Record<string, number> = {};
  for (const w of windows) counts[w.kind] = (counts[w.kind] ?? 0) + 1;
  // Each explained failure under the last fault whose window explains it.
  const byFault: Record<string, number> = {};
  for (const s of failed) {
    const w = windows.filter((x) => explains(x, s)).at(-1);
    if (!w) continue;
    const k = `${w.kind} ${w.what} at ${Math.round(w.at - t0)}`;
    byFault[k] = (byFault[k] ?? 0) + 1;
  }
  const errors: Record<string, number> = {};
  for (const s of unexplained) {
    const k = (s.error ?? '').slice(0, 60);
    errors[k] = (errors[k] ?? 0) + 1;
  }
  out({
    soak: 'summary',
    started,
    minutes: args.minutes,
    seed: args.seed,
    faults: counts,
    faultsTotal: faults,
    requests: samples.length,
    /** Requests the entry served as its own exit (no tunnel on the path). */
    localExit: samples.filter((s) => s.path !== '' && !s.path.includes(',')).length,
    failed: failed.length,
    failedInFaultWindows: failed.length - unexplained.length,
    failedUnexplained: unexplained.length,
    failedByFault: byFault,
    corrupt,
    unexplainedErrors: errors,
  });
  // The unexplained ones in detail, with the last fault before each (to chase them).
  for (const s of unexplained.slice(0, 40)) {
    const last = windows.filter((w) => w.at <= s.doneAt).at(-1);
    out({
      unexplained: s.seq,
      entry: s.entry,
      sentT: Math.round(s.sentAt - t0),
      ms: Math.round(s.doneAt - s.sentAt),
      status: s.status,
      path: s.path,
      error: s.error,
      lastFault: last ? `${last.kind} ${last.what} at ${Math.round(last.at - t0)}` : undefined,
    });
  }
  process.exitCode = unexplained.length > 0 || corrupt > 0 ? 1 : 0;
}

main().catch((err: unknown) => {
  process.stderr.write(`soak failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exitCode = 2;
});
