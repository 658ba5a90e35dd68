/**
 * The normal client of slow-clients.bench.ts and test/resilience/slow-clients.test.ts, in its
 * own process with its own origin (`/fast?bytes=N` for the entry's `fast` origin name), so
 * its rate measures the entry and not the process that serves the 10,000 slow origin
 * connections (the bench's own).
 *
 * One JSON argument: {"host":H} (where the origin listens, default 127.0.0.1). Prints
 * {"ready":true,"port":P,"pid":PID}; then for each stdin line {"host":H,"port":P,"bytes":N,
 * "runs":R} downloads `/fast?bytes=N` R times through the entry at H:P, one after the other,
 * each on a fresh connection, and prints {"rates":[MB/s...],"startedAt":T,"endedAt":T}
 * (epoch ms; "phases": per download [ms to the TCP connect, to the response head, to the
 * last byte]) or {"error":"...","startedAt":T,"endedAt":T}. Exits when stdin closes.
 */
import { createInterface } from 'node:readline';
import { download, startOrigin } from './slow-clients-run.ts';

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
const lines = createInterface({ input: process.stdin });
lines.on('line', async (l) => {
  const cmd = JSON.parse(l) as { host: string; port: number; bytes: number; runs: number };
  const startedAt = Date.now();
  const rates: number[] = [];
  // Per download, ms from its start: TCP connect to the entry, response head, last byte.
  const phases: number[][] = [];
  const phase = (p: { connect: number; head: number; total: number }) =>
    phases.push([p.connect, p.head, p.total].map(Math.round));
  try {
    for (let i = 0; i < cmd.runs; i++)
      rates.push(await download(cmd.host, cmd.port, cmd.bytes, count, phase));
    process.stdout.write(`${JSON.stringify({ rates, phases, startedAt, endedAt: Date.now() })}\n`);
  } catch (err) {
    process.stdout.write(
      `${JSON.stringify({ error: (err as Error).message, rates, startedAt, endedAt: Date.now() })}\n`,
    );
  }
});
lines.once('close', () => {
  void origin.close().then(() => process.exit(0));
});
