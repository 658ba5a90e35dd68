/**
 * The entry's slow lane (slow-lane.ts starts it with `fork`): a process of its own, every
 * thread at a lower priority, that serves the client connections of addresses the entry
 * has sorted out as slow (many parked responses). The kernel then gives the node's own
 * streams the CPU first: inside one process nothing could, since the streams and the slow
 * clients share one event loop and V8's helper threads share its cores (docs/reliability.md,
 * "A process of its own, at a lower priority").
 *
 * It runs an entry of its own (EntryServer in `lane` mode: connections are handed over,
 * nothing listens), an entry connector over a copy of the node's route table, and its own
 * exit for routes where this node is the exit. Streams to peers go over one mux session on
 * a socketpair to the node (fd 3), each starting with a preamble that names its first hop;
 * the node opens the stream on its tunnel and splices the two.
 */
import net from 'node:net';
import { createDialer, createRootLogger, F, type Logger, RelayError } from '@relaymesh/shared';
import pino from 'pino';
import { Session } from '../../mux/session.ts';
import { StreamTransport } from '../../mux/stream-transport.ts';
import { tuneGcForStreaming } from '../../node/gc-tuning.ts';
import { OriginTable } from '../../routing/origin-catalog.ts';
import { RouteTable } from '../../routing/route-table.ts';
import { EntryConnector } from '../entry-connector.ts';
import { ExitHandler } from '../exit/exit-handler.ts';
import { exitWithParent } from '../exit-with-parent.ts';
import { EntryServer } from '../http/entry-server.ts';
import type { HopStream } from '../types.ts';
import { type FromLane, LANE_LINK_MUX, MAX_PEER_ID_BYTES, type ToLane } from './lane-protocol.ts';
import { idleAll, type Reniced } from './renice.ts';

/** How often the node hears the lane's counters. */
const STATS_MS = 1_000;

interface Lane {
  log: Logger;
  routes: RouteTable;
  catalog: OriginTable;
  session: Session;
  exit: ExitHandler;
  entry: EntryServer;
  stats: NodeJS.Timeout;
}

let lane: Lane | undefined;
let draining = false;
/** The addresses the node sent here (its `watch`): the reports give their parked responses. */
let watched: string[] = [];

function send(m: FromLane): void {
  if (process.connected) process.send?.(m);
}

function preamble(peer: string): Buffer {
  const id = Buffer.from(peer, 'utf8');
  if (id.length === 0 || id.length > MAX_PEER_ID_BYTES)
    throw new RelayError('ERR_CONFIG_INVALID', `peer id of ${id.length} bytes`);
  const b = Buffer.allocUnsafe(4 + id.length);
  b.writeUInt32BE(id.length, 0);
  id.copy(b, 4);
  return b;
}

function start(m: Extract<ToLane, { t: 'start' }>, niced: Reniced): void {
  // SCHED_IDLE only now, loaded: a lane started during a burst (the usual case) loads its
  // modules, ~0.3-1 s of CPU, at nice 10 in about a second; under SCHED_IDLE on the burst's
  // busy core that took seconds, and the flood's address reached it 3.3-5.5 s in.
  if (process.env.RELAYMESH_LANE_POLICY === 'idle') {
    const failed = idleAll();
    if (failed === undefined) niced.idle = true;
    else niced.failed ??= `SCHED_IDLE: ${failed}`;
  }
  const log = createRootLogger({
    name: 'relay-node',
    level: m.logLevel,
    base: { lane: 'slow' },
    destination: pino.destination({ fd: 2, sync: true }),
  }).child({ [F.COMPONENT]: 'slow-lane', [F.NODE_ID]: m.nodeId });
  // It streams bodies like the node: the same marking triggers (gc-tuning.ts).
  tuneGcForStreaming();
  if (niced.cpusFailed !== undefined)
    log.warn(
      { asked: process.env.RELAYMESH_LANE_CPUS, cpus: niced.cpus, reason: niced.cpusFailed },
      'slow lane: could not move to the CPUs asked for',
    );
  if (niced.failed !== undefined)
    log.warn(
      { nice: niced.nice, idle: niced.idle === true, threads: niced.set, reason: niced.failed },
      'slow lane: could not lower the priority of every thread',
    );
  const catalog = new OriginTable();
  catalog.replaceParsed(m.origins);
  const routes = new RouteTable({ nodeId: m.nodeId });
  routes.load(m.routes);
  const link = new net.Socket({ fd: 3, readable: true, writable: true });
  const session = new Session({
    transport: new StreamTransport(link),
    role: 'client',
    logger: log,
    config: LANE_LINK_MUX,
  });
  session.on('error', (err: Error) => log.error({ err }, 'slow lane: link to the node failed'));
  // Without the link the lane cannot reach any peer: the node sees the exit and starts
  // another (or is gone itself).
  session.on('close', () => {
    if (!draining) {
      log.error('slow lane: link to the node closed');
      process.exit(1);
    }
  });
  const opener = {
    open(peer: string): HopStream {
      if (routes.tunnelIsDown(peer))
        throw new RelayError('ERR_MUX_SESSION_CLOSED', `no tunnel to ${peer}`);
      const stream = session.open();
      stream.write(preamble(peer));
      return stream as HopStream;
    },
  };
  const exit = new ExitHandler({
    ...m.exit,
    catalog,
    dialer: createDialer({ egressProxy: m.egressProxy }),
    logger: log,
  });
  const connector = new EntryConnector({
    nodeId: m.nodeId,
    routes: {
      pathsFor: (origin) => routes.pathsFor(origin),
      markPeerDown: (peer) => {
        routes.markPeerDown(peer);
        send({ t: 'peerDown', peer });
      },
    },
    opener,
    exit,
    logger: log,
    ...(m.responseHeadTimeoutMs === undefined
      ? {}
      : { responseHeadTimeoutMs: m.responseHeadTimeoutMs }),
  });
  const entry = new EntryServer({
    ...m.entry,
    nodeId: m.nodeId,
    catalog,
    connector,
    logger: log,
    debugHeaders: m.debugHeaders,
    acceptor: 'lane',
  });
  const stats = setInterval(() => {
    const s = entry.stalls;
    send({
      t: 'stats',
      clients: entry.clients,
      parkedNow: s.parkedNow,
      sources: watched.map((source) => ({ source, parked: entry.parkedFrom(source) })),
    });
  }, STATS_MS);
  lane = { log, routes, catalog, session, exit, entry, stats };
  log.info(
    {
      pid: process.pid,
      nice: niced.nice,
      idle: niced.idle === true,
      threads: niced.set,
      cpus: niced.cpus,
    },
    'slow lane serving',
  );
  send({
    t: 'ready',
    idle: niced.idle === true,
    ...(niced.cpus === undefined ? {} : { cpus: niced.cpus }),
  });
}

function adopt(handle: unknown): void {
  // pauseOnCreate: nothing is read until the lane's gate admits it (net.Server's
  // pauseOnConnect does the same for the sockets it accepts).
  const socket = new net.Socket({
    handle,
    readable: true,
    writable: true,
    pauseOnCreate: true,
  } as net.SocketConstructorOpts);
  if (!lane || draining) {
    socket.destroy();
    return;
  }
  lane.entry.adopt(socket);
}

async function drain(): Promise<void> {
  if (draining) return;
  draining = true;
  if (!lane) process.exit(0);
  const { entry, exit, session, stats, log } = lane;
  clearInterval(stats);
  await entry.close();
  await exit.close();
  await session.close().catch(() => {});
  log.info('slow lane drained');
  process.exit(0);
}

/**
 * Serves as the slow lane; lane-main.ts calls it once every thread is reniced, with the
 * messages that came while this module loaded (in order).
 */
export function runLane(niced: Reniced, early: Array<[ToLane, unknown]> = []): void {
  const onMessage = (m: ToLane, handle?: unknown) => {
    switch (m.t) {
      case 'start':
        if (!lane) start(m, niced);
        break;
      case 'origins':
        try {
          lane?.catalog.replaceParsed(m.origins);
        } catch (err) {
          lane?.log.error({ err }, 'slow lane: origins from the node rejected');
        }
        break;
      case 'routes':
        lane?.routes.load(m.routes);
        break;
      case 'watch':
        watched = m.sources;
        break;
      case 'socket':
        if (handle) adopt(handle);
        break;
      case 'drain':
        void drain();
        break;
    }
  };
  process.on('message', onMessage);
  for (const [m, handle] of early) onMessage(m, handle);

  // Ctrl-C signals the whole process group: the node drains this lane itself.
  process.on('SIGINT', () => {});

  // The node is gone: nothing will drain the lane, and its clients' streams are gone
  // anyway. A lane already draining finishes first.
  exitWithParent(() => draining);
}
