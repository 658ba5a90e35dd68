/**
 * The slow-client load process of slow-clients.bench.ts and test/resilience: opens `count`
 * TCP connections to an HTTP entry, sends one `GET path` (Host `host`) on each, and then
 * reads each response at 1 byte per second: every socket reads into a shared 1-byte buffer
 * (`onread`) and pauses after each byte; one timer resumes every socket once a second. So
 * the client really reads 1 B/s (its kernel receive window stays full), and this process
 * holds no response data.
 *
 * One JSON argument: {"port":P,"connect":ADDR,"host":H,"path":"/...","count":N,"batch":B,
 * "connectRate":R,"go":true} (`connect`: the entry's address, default 127.0.0.1; `host`: the
 * Host header). With `go`, it first prints {"started":true,"pid":PID} once loaded and opens
 * nothing until a line on stdin, so its own startup (~0.4 of a core for a second: node and
 * tsx) is not part of the load. Without `connectRate` connections open `batch` at a time, each batch once the
 * previous one has connected (as fast as the entry's kernel completes handshakes); with it,
 * R new connections a second on a schedule (every 10 ms those due), not waiting for earlier
 * ones, and the whole schedule must fit in {@link MAX_SCHEDULE_S} (else an error on stderr
 * and exit code 2). Run it in its own process with enough descriptors
 * (`bash -c 'ulimit -n 20000; exec node ...'`).
 * Prints {"ready":true,"pid":PID,"connected":N,"failed":F,"ms":T} once every connection is open
 * (ms: from the first connect started to the last one completed or failed),
 * then one progress line per second {"open":N,"answered":A,"bytes":B,"closed":C,
 * "statuses":{"200":N,...}} (status codes of the responses seen so far). Exits
 * when stdin closes or on SIGTERM.
 */
import net from 'node:net';

interface LoadArgs {
  port: number;
  connect?: string;
  host: string;
  path: string;
  count: number;
  /** Connections opened at once. @default 200 */
  batch?: number;
  /** New connections per second (paced); undefined: batches as fast as they connect. */
  connectRate?: number;
  /** Wait for a line on stdin before connecting (after a `started` line). */
  go?: boolean;
}

/** Longest paced schedule, s: the bench waits at most 120 s for the load's answers. */
const MAX_SCHEDULE_S = 100;

const args = JSON.parse(process.argv[2] ?? '{}') as LoadArgs;
const sockets = new Set<net.Socket>();
const answered = new WeakSet<net.Socket>();
const heads = new Map<net.Socket, string>();
const counted = new WeakSet<net.Socket>();
const statuses: Record<string, number> = {};
const sink = Buffer.alloc(1);
let bytes = 0;
let answeredCount = 0;
let closed = 0;
let failed = 0;

function open(): Promise<void> {
  return new Promise((resolve) => {
    let settled = false;
    const done = () => {
      if (!settled) {
        settled = true;
        resolve();
      }
    };
    const socket: net.Socket = net.connect({
      port: args.port,
      host: args.connect ?? '127.0.0.1',
      onread: {
        buffer: sink,
        callback: (n: number) => {
          bytes += n;
          if (!answered.has(socket)) {
            answered.add(socket);
            answeredCount++;
          }
          // The status line's first 12 bytes ('HTTP/1.1 200') are read at once, to count
          // statuses; then one byte per resume.
          if (!counted.has(socket)) {
            const line = (heads.get(socket) ?? '') + sink.toString('latin1', 0, n);
            if (line.length < 12) {
              heads.set(socket, line);
              return true;
            }
            heads.delete(socket);
            counted.add(socket);
            const status = line.slice(9, 12);
            statuses[status] = (statuses[status] ?? 0) + 1;
          }
          return false; // pause: the next byte only when the timer resumes us
        },
      },
    });
    socket.once('connect', () => {
      sockets.add(socket);
      socket.setTimeout(0);
      socket.write(`GET ${args.path} HTTP/1.1\r\nHost: ${args.host}\r\n\r\n`);
      done();
    });
    socket.on('error', () => {});
    socket.once('close', () => {
      if (sockets.delete(socket)) closed++;
      else failed++;
      done();
    });
    socket.setTimeout(10_000, () => socket.destroy()); // connect timeout only
  });
}

/** Opens `count` connections, `rate` a second: every 10 ms those due by then. */
async function paced(count: number, rate: number): Promise<void> {
  const started = performance.now();
  const pending: Array<Promise<void>> = [];
  while (pending.length < count) {
    const due = Math.min(count, Math.floor(((performance.now() - started) * rate) / 1000) + 1);
    while (pending.length < due) pending.push(open());
    await new Promise((r) => setTimeout(r, 10));
  }
  await Promise.all(pending);
}

async function main(): Promise<void> {
  const rate = args.connectRate;
  if (rate !== undefined && !(rate > 0 && args.count / rate <= MAX_SCHEDULE_S)) {
    process.stderr.write(
      `slow-clients-load: connectRate ${rate} must be > 0 and open ${args.count} connections within ${MAX_SCHEDULE_S} s (>= ${Math.ceil(args.count / MAX_SCHEDULE_S)}/s)\n`,
    );
    process.exit(2);
  }
  if (args.go) {
    process.stdout.write(`${JSON.stringify({ started: true, pid: process.pid })}\n`);
    await new Promise<void>((resolve) => {
      process.stdin.once('data', () => resolve());
      process.stdin.once('end', () => process.exit(0));
    });
  }
  const started = performance.now();
  const batch = args.batch ?? 200;
  if (rate !== undefined) await paced(args.count, rate);
  else {
    for (let i = 0; i < args.count; i += batch) {
      const n = Math.min(batch, args.count - i);
      await Promise.all(Array.from({ length: n }, open));
    }
  }
  const ms = Math.round(performance.now() - started);
  process.stdout.write(
    `${JSON.stringify({ ready: true, pid: process.pid, connected: sockets.size, failed, ms })}\n`,
  );
  const tick = setInterval(() => {
    for (const s of sockets) s.resume();
  }, 1000);
  const report = setInterval(() => {
    process.stdout.write(
      `${JSON.stringify({ open: sockets.size, answered: answeredCount, bytes, closed, statuses })}\n`,
    );
  }, 1000);
  const stop = () => {
    clearInterval(tick);
    clearInterval(report);
    for (const s of sockets) s.destroy();
    process.exit(0);
  };
  process.stdin.on('end', stop);
  process.stdin.on('close', stop);
  process.stdin.resume();
  process.on('SIGTERM', stop);
}

void main();
