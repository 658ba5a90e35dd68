/**
 * The normal client of slow-clients.bench.ts and test/resilience/slow-clients.test.ts, in its
 * own process with its own origin (`/fast?bytes=N` for the entry's `fast` origin name), so
 * its rate measures the entry and not the process that serves the 10,000 slow origin
 * connections (the bench's own).
 *
 * One JSON argument: {"host":H} (where the origin listens, default 127.0.0.1). Prints
 * {"ready":true,"port":P,"pid":PID}; then for each stdin line {"host":H,"port":P,"bytes":N,
 * "runs":R,"conn":"fresh"|"established"} downloads `/fast?bytes=N` R times through the entry
 * at H:P, one after the other, and prints {"rates":[MB/s...],"startedAt":T,"endedAt":T}
 * (epoch ms; "phases": per download [ms to the TCP connect, to the response head, to the
 * last byte]) or {"error":"...","startedAt":T,"endedAt":T}. `conn` "fresh" (the default):
 * each download on a fresh connection; "established": all on one keep-alive connection
 * (slow-clients-keepalive.ts), opened by the first such command and never reopened, the
 * answer then also has "connection":{"downloads":N,"closed":WHY,"closedAt":T} (closed and
 * closedAt once it has closed). Exits when stdin closes.
 */
import { createInterface } from 'node:readline';
import { EstablishedConnection } from './slow-clients-keepalive.ts';
import { type DownloadPhases, download, startOrigin } from './slow-clients-run.ts';

const args = JSON.parse(process.argv[2] ?? '{}') as { host?: string };
const origin = await startOrigin(args.host ?? '127.0.0.1');
process.stdout.write(`${JSON.stringify({ ready: true, port: origin.port, pid: process.pid })}\n`);
// Bytes received so far, every 250 ms while downloading: the bench's per-second timeline.
let received = 0;
let reported = 0;
setInterval(() => {
  if (received === reported) return;
  reported = received;
  process.stdout.write(`${JSON.stringify({ progress: received, t: Date.now() })}\n`);
}, 250).unref();
const count = (n: number) => {
  received += n;
};
let established: EstablishedConnection | undefined;
/** The established connection's state, for the answer of an "established" command. */
const connection = () =>
  established && {
    downloads: established.downloads,
    ...(established.closed === undefined
      ? {}
      : { closed: established.closed, closedAt: established.closedAt }),
  };
const lines = createInterface({ input: process.stdin });
lines.on('line', async (l) => {
  const cmd = JSON.parse(l) as {
    host: string;
    port: number;
    bytes: number;
    runs: number;
    conn?: 'fresh' | 'established';
  };
  if (cmd.conn === 'established') established ??= new EstablishedConnection(cmd.host, cmd.port);
  const get =
    cmd.conn === 'established' && established
      ? established.download.bind(established, cmd.bytes)
      : download.bind(null, cmd.host, cmd.port, cmd.bytes);
  const state = () => (cmd.conn === 'established' ? { connection: connection() } : {});
  const startedAt = Date.now();
  const rates: number[] = [];
  // Per download, ms from its start: TCP connect to the entry, response head, last byte.
  const phases: number[][] = [];
  const phase = (p: DownloadPhases) => phases.push([p.connect, p.head, p.total].map(Math.round));
  try {
    for (let i = 0; i < cmd.runs; i++) rates.push(await get(count, phase));
    const endedAt = Date.now();
    const c = state();
    process.stdout.write(`${JSON.stringify({ rates, phases, startedAt, endedAt, ...c })}\n`);
  } catch (err) {
    const c = state();
    const error = (err as Error).message;
    process.stdout.write(
      `${JSON.stringify({ error, rates, phases, startedAt, endedAt: Date.now(), ...c })}\n`,
    );
  }
});
lines.once('close', () => {
  established?.destroy();
  void origin.close().then(() => process.exit(0));
});
