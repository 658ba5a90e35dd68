/**
 * Coordinator CPU and memory with many lightweight node clients: each registers, keeps
 * one session stream and sends a measurement report every second (20 peers, 5 origins)
 * plus heartbeats. The coordinator runs in its own process; the baseline is the same
 * process idle (started, no clients) measured in the same run. Prints one JSON line.
 *
 *   node --import tsx packages/coordinator/bench/coordinator-load.bench.ts [clients] [seconds]
 */
import { type ChildProcess, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { loadCoordinatorProto, type NodeMessage, tokenInterceptor } from '@relaymesh/shared';

const CLIENTS = Number(process.argv[2] ?? 200);
const SECONDS = Number(process.argv[3] ?? 20);
const PEERS = 20;
const ORIGINS = 5;
const TOKEN = 'bench-token-0123456789abcdef';
let sessions = 0;

interface Sample {
  cpuUs: number;
  rss: number;
  routeVersion: number;
}

function request(child: ChildProcess): Promise<Sample> {
  return new Promise((resolve) => {
    const on = (msg: { type: string } & Sample) => {
      if (msg.type !== 'sample') return;
      child.off('message', on);
      resolve(msg);
    };
    child.on('message', on);
    child.send({ type: 'sample' });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** CPU % of one core and RSS over a window of `ms`. */
async function measure(child: ChildProcess, ms: number) {
  const a = await request(child);
  const t0 = performance.now();
  await sleep(ms);
  const b = await request(child);
  const wall = performance.now() - t0;
  return {
    cpuPercent: ((b.cpuUs - a.cpuUs) / 1000 / wall) * 100,
    rssMb: b.rss / 2 ** 20,
    routeVersion: b.routeVersion,
  };
}

function startClient(proto: ReturnType<typeof loadCoordinatorProto>, address: string, i: number) {
  const stub = new proto.Coordinator(address, grpc.credentials.createInsecure(), {
    interceptors: [tokenInterceptor(TOKEN)],
    // One HTTP/2 connection per simulated node, as real nodes would have.
    'grpc.use_local_subchannel_pool': 1,
  });
  const id = `node-${i}`;
  const peers = Array.from({ length: PEERS }, (_, k) => `node-${(i + 1 + k * 7) % CLIENTS}`).filter(
    (p) => p !== id,
  );
  const timers: NodeJS.Timeout[] = [];
  let session: grpc.ClientDuplexStream<NodeMessage, unknown> | undefined;
  stub.Register(
    { nodeId: id, region: `r${i % 20}`, advertise: `ws://127.0.0.1:${20_000 + i}` },
    (err, res) => {
      if (err || !res) return;
      const call = stub.Session();
      session = call;
      sessions++;
      call.on('data', () => {});
      call.on('error', () => {});
      call.write({ hello: { nodeId: id, sessionId: res.sessionId } });
      let seq = 0;
      const tick = () => {
        const report: NodeMessage = {
          report: {
            peers: peers.map((p, k) => ({
              peerId: p,
              srttMs: 10 + ((i * 31 + k * 17) % 200) + Math.random() * 4,
              jitterMs: 1,
              reachable: true,
            })),
            origins: Array.from({ length: ORIGINS }, (_, o) => ({
              origin: `origin-${o}`,
              upstream: `tcp://127.0.0.1:${10_000 + o}`,
              rttMs: 5 + ((i + o * 13) % 150),
              reachable: true,
            })),
          },
        };
        call.write(report);
        call.write({ heartbeat: { seq: ++seq } });
      };
      // Spread the clients over the second, like independent nodes.
      timers.push(
        setTimeout(() => {
          tick();
          timers.push(setInterval(tick, 1000));
        }, Math.random() * 1000),
      );
    },
  );
  return () => {
    for (const t of timers) clearInterval(t);
    session?.cancel();
    stub.close();
  };
}

const child = fork(fileURLToPath(new URL('./coordinator-process.ts', import.meta.url)), [], {
  // Same loader and conditions as this process (tsx; @relaymesh/source under pnpm bench).
  execArgv: process.execArgv,
  env: { ...process.env, BENCH_TOKEN: TOKEN, BENCH_ORIGINS: String(ORIGINS) },
  stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
});
const address = await new Promise<string>((resolve) =>
  child.on(
    'message',
    (m: { type: string; address: string }) => m.type === 'listening' && resolve(m.address),
  ),
);
await sleep(1000);
const idle = await measure(child, 3000);
const proto = loadCoordinatorProto();
const stops = Array.from({ length: CLIENTS }, (_, i) => startClient(proto, address, i));
await sleep(3000); // everyone registered and reporting
const loaded = await measure(child, SECONDS * 1000);
for (const stop of stops) stop();
child.send({ type: 'stop' });
await new Promise((r) => child.once('exit', r));
console.log(
  JSON.stringify({
    bench: 'coordinator.load',
    clients: CLIENTS,
    peersPerReport: PEERS,
    originsPerReport: ORIGINS,
    reportIntervalMs: 1000,
    seconds: SECONDS,
    value: Number(loaded.cpuPercent.toFixed(1)),
    unit: 'cpu % of one core',
    baseline: Number(idle.cpuPercent.toFixed(1)),
    baselineIs: 'same coordinator process idle (no clients)',
    ratio: Number((loaded.cpuPercent / Math.max(idle.cpuPercent, 0.1)).toFixed(1)),
    rssMb: Number(loaded.rssMb.toFixed(1)),
    idleRssMb: Number(idle.rssMb.toFixed(1)),
    sessions,
    routeVersions: loaded.routeVersion,
  }),
);
