/**
 * The entry's acceptor process (src/proxy/http/acceptor.ts starts it with `fork`). It owns
 * the entry's listening socket, accepts connections paused (nothing is read from them),
 * and hands them to the entry's process over the IPC channel: every one at once while the
 * entry's admission gate is open, one per credit the gate grants while it is throttled,
 * round-robin by source address. Node accepts on the thread that polls the listener and
 * cannot pause that; ~25 us per connection plus its bookkeeping, so a burst of 10,000
 * connects took the entry's event loop from the streams already open. Here the burst costs
 * this process, and the entry's loop sees only the connections its gate lets in.
 *
 * Imports only node: modules, fair-queue.ts and exit-with-parent.ts; the messages are in
 * acceptor-protocol.ts.
 */
import net from 'node:net';
import { setPriority } from 'node:os';
import { performance } from 'node:perf_hooks';
import { exitWithParent } from '../exit-with-parent.ts';
import type { FromAcceptor, ToAcceptor } from './acceptor-protocol.ts';
import { FairQueue } from './fair-queue.ts';

interface Waiting {
  socket: net.Socket;
  at: number;
}

/** Handles sent and not yet written to the channel: Node queues the rest until the entry acks. */
const MAX_SENDING = 8;
/**
 * The same for the slow lane's handles, fewer: they share the one channel with the gate's,
 * and Node sends one handle per ack of the entry, in order, so a connection the gate lets
 * in waits behind every lane handle queued before it, each a round trip through the
 * entry's busy loop.
 */
const MAX_LANE_SENDING = 2;
/** While connections wait, the entry hears how many this often. */
const REPORT_MS = 50;
/** The window of the per-address connect counts. */
const CONNECTS_MS = 1_000;

const queue = new FairQueue<Waiting>();
let accepted = 0;
let open = true;
let credit = 0;
let sending = 0;
let maxWaiting = 4096;
let server: net.Server | undefined;
let reportTimer: NodeJS.Timeout | undefined;
let closing = false;
/** Source addresses whose connections go to the slow lane. */
const laneSources = new Set<string>();
/** An address opening this many connections within CONNECTS_MS is reported; 0: never. */
let floodConnects = 0;
/** Connections accepted per address since `connectsFrom` (bounded by one window's accepts). */
const connects = new Map<string, number>();
let connectsFrom = 0;

/**
 * Counts a connection of `source`, and reports the address when it reaches `floodConnects`
 * within the window: the entry sends a connect flood to the slow lane from its first
 * tenth of a second, gate open or not (waiting connections show it only once the gate
 * throttles, and each it lets in before then is a slow client for the entry to answer).
 */
function countConnect(source: string, now: number): void {
  if (now - connectsFrom >= CONNECTS_MS) {
    connects.clear();
    connectsFrom = now;
  }
  const n = (connects.get(source) ?? 0) + 1;
  connects.set(source, n);
  if (n === floodConnects) send({ t: 'connects', source, n });
}

function send(m: FromAcceptor, handle?: net.Socket, done?: () => void): void {
  if (!process.connected) return;
  if (handle) process.send?.(m, handle, { keepOpen: false }, done);
  else process.send?.(m);
}

/** Connections for the slow lane not yet sent, and those sent but not yet written. */
const laneQueue: net.Socket[] = [];
let laneSending = 0;

/**
 * Queues a connection for the slow lane: it goes as its raw handle (the entry passes it on
 * without reading from it), and this copy is closed once written.
 */
function toLane(socket: net.Socket): void {
  // As many wait as for the gate: beyond, they would only hold descriptors.
  if (laneQueue.length >= maxWaiting) {
    socket.destroy();
    return;
  }
  socket.removeAllListeners('error');
  socket.on('error', () => {});
  laneQueue.push(socket);
  pumpLane();
}

/**
 * A few handles in flight at a time, as for the gate's: Node queues a message sent while a
 * handle waits for its ack, and on each ack sends the first queued one and re-queues all
 * the others, so thousands queued at once (an address's waiting connections, moved) cost
 * time quadratic in their number.
 */
function pumpLane(): void {
  while (laneSending < MAX_LANE_SENDING && laneQueue.length > 0) {
    const socket = laneQueue.shift() as net.Socket;
    const handle = (socket as unknown as { _handle: unknown })._handle;
    if (!process.connected || !handle) {
      socket.destroy();
      continue;
    }
    laneSending++;
    process.send?.({ t: 'lane' } satisfies FromAcceptor, handle as net.Socket, {}, () => {
      laneSending--;
      socket.destroy();
      pumpLane();
    });
  }
}

function report(): void {
  reportTimer = undefined;
  const top = queue.top();
  send({ t: 'waiting', n: queue.size, accepted, ...(top ? { top } : {}) });
  if (queue.size > 0) reportTimer = setTimeout(report, REPORT_MS);
}

/** Hands over what the gate allows, a few handles in flight at a time. */
function pump(): void {
  while (queue.size > 0 && sending < MAX_SENDING && (open || credit > 0)) {
    const w = queue.shift();
    if (!w) break;
    const credited = !open;
    if (credited) credit--;
    sending++;
    const waitedMs = performance.now() - w.at;
    // Not destroyed once on its way: Node closes this copy after sending it.
    w.socket.removeAllListeners('error');
    w.socket.on('error', () => {});
    send({ t: 'socket', waitedMs, credited, waiting: queue.size, accepted }, w.socket, () => {
      sending--;
      pump();
    });
  }
  if (queue.size > 0 && !reportTimer) reportTimer = setTimeout(report, REPORT_MS);
}

function onConnection(socket: net.Socket): void {
  accepted++;
  if (closing) {
    socket.destroy();
    return;
  }
  const source = socket.remoteAddress ?? '';
  if (laneSources.size > 0 && laneSources.has(source)) {
    toLane(socket);
    return;
  }
  if (floodConnects > 0) countConnect(source, performance.now());
  if (queue.size >= maxWaiting) {
    socket.destroy();
    return;
  }
  // A paused socket reads nothing, but a reset can still come.
  socket.on('error', () => socket.destroy());
  queue.push({ socket, at: performance.now() });
  // Throttled: the entry learns at once that someone waits (it may open, or grant a credit).
  if (queue.size === 1 && !open) send({ t: 'waiting', n: 1, accepted });
  pump();
}

function close(): void {
  closing = true;
  server?.close();
  for (const w of queue.clear()) w.socket.destroy();
  for (const socket of laneQueue.splice(0)) socket.destroy();
  clearTimeout(reportTimer);
  process.disconnect?.();
}

process.on('message', (m: ToAcceptor) => {
  switch (m.t) {
    case 'listen': {
      maxWaiting = m.maxWaiting;
      floodConnects = m.floodConnects;
      if (m.nice > 0) {
        try {
          setPriority(m.nice);
        } catch {
          // not allowed here (a seccomp profile): accept at the entry's priority
        }
      }
      server = net.createServer({ pauseOnConnect: true }, onConnection);
      let listening = false;
      let warnedAt = 0;
      server.on('error', (err: NodeJS.ErrnoException) => {
        const e = { code: err.code ?? 'ERR', message: err.message };
        if (!listening) return send({ t: 'error', ...e });
        // accept(2) failed (EMFILE...): the listener goes on; the entry logs it, once a second.
        const now = performance.now();
        if (now - warnedAt < 1_000) return;
        warnedAt = now;
        send({ t: 'acceptError', ...e });
      });
      server.listen({ host: m.host, port: m.port, backlog: m.backlog }, () => {
        listening = true;
        const a = server?.address() as net.AddressInfo;
        send({ t: 'listening', address: a.address, family: a.family, port: a.port });
      });
      break;
    }
    case 'open':
      open = m.open;
      if (open) credit = 0;
      pump();
      break;
    case 'credit':
      // Granted ahead (up to the gate's bucket), or taken back when its rate fell.
      credit = Math.max(0, credit + m.n);
      pump();
      break;
    case 'lane':
      if (m.on) {
        laneSources.add(m.source);
        const moved = queue.take(m.source);
        for (const w of moved) toLane(w.socket);
        // The entry's count of waiting connections drops with them.
        if (moved.length > 0) send({ t: 'waiting', n: queue.size, accepted });
      } else laneSources.delete(m.source);
      break;
    case 'close':
      close();
      break;
  }
});

// Ctrl-C in a terminal signals the whole process group: the entry drains, then closes this
// one; dying first would only make the entry log a death and start a replacement.
process.on('SIGINT', () => {});

// The entry's process is gone (or let go of the channel): nothing to hand connections to.
exitWithParent();
