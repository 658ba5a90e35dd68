import { createRootLogger, type Logger } from '@relaymesh/shared';
import type { Command, CommanderError } from 'commander';
import { pino } from 'pino';
import { heapFloorAdvice, STREAMING_GC_FLAGS, tuneGcForStreaming } from '../node/gc-tuning.ts';
import { mallocTuningAdvice } from '../node/malloc-tuning.ts';
import {
  loadNodeConfigFile,
  type NodeSettings,
  type ResolvedNodeSettings,
  resolveNodeSettings,
} from '../node/node-config.ts';
import { RelayNode, type RelayNodeAddresses } from '../node/relay-node.ts';
import { EXIT, failCommand } from './coordinator-command.ts';

interface NodeFlags {
  config?: string;
  id?: string;
  region?: string;
  coordinator?: string;
  token?: string;
  tunnelListen?: string;
  advertise?: string;
  egressProxy?: string;
  httpListen?: string;
  httpAdvertise?: string;
  forward?: string[];
  debugHeaders?: boolean;
  logLevel?: string;
  closeGraceMs?: string;
  entryAcceptor?: string;
  entryAcceptorNice?: string;
  slowLane?: string;
  slowLanePolicy?: string;
  slowLaneCpus?: string;
}

/** Flags over the config file, field by field; the token: flag, RELAYMESH_TOKEN, file. */
function mergeSettings(flags: NodeFlags): NodeSettings {
  const file = flags.config === undefined ? {} : loadNodeConfigFile(flags.config);
  const merged: NodeSettings = { ...file };
  const set = <K extends keyof NodeSettings>(key: K, value: NodeSettings[K] | undefined) => {
    if (value !== undefined) merged[key] = value;
  };
  set('id', flags.id);
  set('region', flags.region);
  set('coordinator', flags.coordinator);
  set('tunnelListen', flags.tunnelListen);
  set('advertise', flags.advertise);
  set('egressProxy', flags.egressProxy);
  set('httpListen', flags.httpListen);
  set('httpAdvertise', flags.httpAdvertise);
  set('forwards', flags.forward);
  set('debugHeaders', flags.debugHeaders);
  set('logLevel', flags.logLevel);
  set('entryAcceptor', flags.entryAcceptor);
  set('slowLane', flags.slowLane);
  set('slowLanePolicy', flags.slowLanePolicy);
  set('slowLaneCpus', flags.slowLaneCpus);
  set('token', flags.token ?? process.env.RELAYMESH_TOKEN ?? file.token);
  if (flags.closeGraceMs !== undefined) merged.closeGraceMs = Number(flags.closeGraceMs);
  // An empty or non-numeric value stays visible to the check: Number('') would be 0.
  if (flags.entryAcceptorNice !== undefined)
    merged.entryAcceptorNice = /^\s*$/.test(flags.entryAcceptorNice)
      ? Number.NaN
      : Number(flags.entryAcceptorNice);
  return merged;
}

/** The one stdout line a supervisor (the world runner, tests) waits for. */
function readyLine(id: string, a: RelayNodeAddresses): string {
  const ports: Record<string, number> = { tunnel: a.tunnel.port };
  if (a.http) ports.http = a.http.port;
  return JSON.stringify({
    ready: true,
    id,
    tunnelPort: a.tunnel.port,
    ...(a.http ? { httpPort: a.http.port } : {}),
    ...(a.forwards.length > 0 ? { forwardPorts: a.forwards.map((f) => f.port) } : {}),
    advertise: a.advertise,
    ...(a.httpAdvertise === undefined ? {} : { httpAdvertise: a.httpAdvertise }),
    ports,
  });
}

/** First signal: graceful close within the grace; second: destroy at once. */
function untilSignalled(node: RelayNode, logger: Logger, graceMs: number): Promise<void> {
  return new Promise((resolve) => {
    let count = 0;
    const onSignal = (signal: NodeJS.Signals) => {
      count++;
      if (count === 1) {
        logger.info({ signal, graceMs }, 'shutting down gracefully');
        void node.close(graceMs).then(resolve);
        return;
      }
      logger.warn({ signal }, 'second signal: stopping at once');
      node.destroy();
      resolve();
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
}

async function runNode(flags: NodeFlags): Promise<void> {
  const settings: ResolvedNodeSettings = resolveNodeSettings(mergeSettings(flags));
  // Logs on stderr: stdout carries only the ready line, for machines.
  const logger = createRootLogger({
    name: 'relay-node',
    level: settings.logLevel,
    destination: pino.destination({ fd: 2, sync: true }),
  });
  // Before any stream: V8's marking triggers for a streaming process (gc-tuning.ts).
  const gcTuned = tuneGcForStreaming();
  logger.debug(
    { gcFlags: gcTuned ? STREAMING_GC_FLAGS : 'chosen by the operator' },
    'garbage collector triggers',
  );
  // V8 sizes its heap at start: the same, for the old generation's floor (gc-tuning.ts).
  const heapFloor = heapFloorAdvice();
  if (heapFloor) {
    logger.warn(
      { nodeFlag: heapFloor },
      "V8 may run several mark-compacts a second on a small heap while streaming: start node with this flag, before the script's path (docs/operations.md)",
    );
  }
  // glibc's tunables are read at exec: this process can only say what it would need.
  const mallocAdvice = mallocTuningAdvice();
  if (mallocAdvice) {
    logger.warn(
      { env: mallocAdvice },
      'glibc may return freed socket buffers to the kernel and fault them in again, up to halving the stream rate: set this in the environment that starts the node (docs/operations.md)',
    );
  }
  const node = new RelayNode({ ...settings.node, logger });
  const addresses = await node.start();
  process.stdout.write(`${readyLine(node.id, addresses)}\n`);
  const log = logger.child({ nodeId: node.id });
  await untilSignalled(node, log, settings.closeGraceMs);
  log.info('relay node exiting');
  // Exit explicitly: a half-closed gRPC channel or a peer's socket must not hold us up.
  process.exit(EXIT.OK);
}

/** Commander's own usage errors (unknown flag, missing value) are exit code 2 too. */
function usageExit(err: CommanderError): never {
  process.exit(err.exitCode === 0 ? EXIT.OK : EXIT.USAGE);
}

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/** `relaymesh node --id ID --region R --coordinator HOST:PORT --tunnel-listen HOST:PORT ...` */
export function registerNodeCommand(program: Command): void {
  program
    .command('node')
    .description('run a relay node: tunnels to peers, entry, relay and exit for the mesh')
    .option('--config <file>', 'node config (YAML); flags override it field by field')
    .option('--id <id>', 'node id, unique in the mesh')
    .option('--region <region>', 'region name, e.g. ap-northeast-1')
    .option('--coordinator <host:port>', 'coordinator gRPC address')
    .option('--token <token>', 'cluster token (default: RELAYMESH_TOKEN, then tokenFile)')
    .option('--tunnel-listen <host:port>', 'tunnel listener address (port 0: any free port)')
    .option('--advertise <url>', 'ws://HOST:PORT peers dial (default: the bound address)')
    .option('--egress-proxy <url>', 'every outbound connection through this HTTP CONNECT proxy')
    .option('--http-listen <host:port>', 'HTTP entry for clients (reverse/forward proxy)')
    .option('--http-advertise <url>', 'http://HOST:PORT clients are told (default: bound)')
    .option('--forward <rule>', 'raw TCP forward [HOST:]PORT=ORIGIN (repeatable)', collect)
    .option('--debug-headers', 'add x-relaymesh-path to responses')
    .option('--log-level <level>', 'pino level (default info)')
    .option('--close-grace-ms <ms>', 'graceful shutdown bound (default 10000)')
    .option(
      '--entry-acceptor <mode>',
      'process: client connections are accepted by a process of their own (default); inline',
    )
    .option(
      '--entry-acceptor-nice <n>',
      "the acceptor process's nice value, 0-19 (default 5): higher, a connect burst takes less of the open streams' CPU and new connections wait longer for their accept; 0: the node's priority",
    )
    .option(
      '--slow-lane <on|eager|off>',
      'on: client addresses holding many parked responses, or flooding the entry, are served by a lower-priority process, started at the first burst (default with --entry-acceptor process); eager: that process starts with the node',
    )
    .option(
      '--slow-lane-policy <idle|nice>',
      "idle: the slow lane runs under Linux's SCHED_IDLE, on what the node leaves of a core (default; nice 10 where chrt cannot set it); nice: at nice 10 alone",
    )
    .option(
      '--slow-lane-cpus <list>',
      "the CPUs the slow lane runs on, a Linux CPU list (1, 2-3, 1,3): on a host with cores to spare, one the node's busy threads do not use (default: the node's; where taskset cannot set them, the node's, with a warning)",
    )
    .exitOverride(usageExit)
    .action(async (flags: NodeFlags) => {
      try {
        await runNode(flags);
      } catch (err) {
        failCommand('node', err);
      }
    });
}
