import { Coordinator, loadClusterConfig } from '@relaymesh/coordinator';
import { createRootLogger, isRelayError, RelayError } from '@relaymesh/shared';
import type { Command } from 'commander';

/**
 * Process exit codes of the control-plane commands (docs/operations.md):
 * 0 ok, 1 other error, 2 invalid config or arguments, 3 unknown node or origin,
 * 4 token rejected, 5 coordinator unreachable.
 */
export const EXIT = {
  OK: 0,
  ERROR: 1,
  USAGE: 2,
  NOT_FOUND: 3,
  UNAUTHENTICATED: 4,
  UNAVAILABLE: 5,
} as const;

/** Maps an error to an exit code and prints one line to stderr. Sets process.exitCode. */
export function failCommand(command: string, err: unknown): void {
  const code = isRelayError(err) ? (err as RelayError).code : undefined;
  const message = err instanceof Error ? err.message : String(err);
  process.stderr.write(`relaymesh ${command}: ${message}${code ? ` (${code})` : ''}\n`);
  switch (code) {
    case 'ERR_CONFIG_INVALID':
    case 'ERR_COORD_BAD_REQUEST':
      process.exitCode = EXIT.USAGE;
      break;
    case 'ERR_COORD_UNKNOWN_NODE':
    case 'ERR_COORD_UNKNOWN_ORIGIN':
      process.exitCode = EXIT.NOT_FOUND;
      break;
    case 'ERR_COORD_UNAUTHENTICATED':
      process.exitCode = EXIT.UNAUTHENTICATED;
      break;
    case 'ERR_COORD_UNAVAILABLE':
      process.exitCode = EXIT.UNAVAILABLE;
      break;
    default:
      process.exitCode = EXIT.ERROR;
  }
}

/** The cluster token from --token, else RELAYMESH_TOKEN (only CLI files read the env). */
export function tokenFrom(flag: string | undefined): string | undefined {
  return flag ?? process.env.RELAYMESH_TOKEN ?? undefined;
}

/** Like {@link tokenFrom}, but a missing token is a usage error (ERR_CONFIG_INVALID). */
export function requireToken(flag: string | undefined): string {
  const token = tokenFrom(flag);
  if (token === undefined || token === '') {
    throw new RelayError(
      'ERR_CONFIG_INVALID',
      'no cluster token: pass --token or set RELAYMESH_TOKEN',
    );
  }
  return token;
}

interface CoordinatorFlags {
  config: string;
  grpcListen: string;
  token?: string;
  logLevel: string;
  leaseMs: string;
  warmupMs: string;
  reportIntervalMs: string;
  recomputeIntervalMs: string;
  settleRounds: string;
}

async function runCoordinator(flags: CoordinatorFlags): Promise<void> {
  const token = tokenFrom(flags.token);
  const config = loadClusterConfig(
    flags.config,
    token === undefined ? {} : { tokenOverride: token },
  );
  const logger = createRootLogger({ name: 'coordinator', level: flags.logLevel });
  const coordinator = new Coordinator({
    config,
    listen: flags.grpcListen,
    leaseMs: positive(flags.leaseMs, '--lease-ms'),
    warmupMs: positive(flags.warmupMs, '--warmup-ms', true),
    heartbeatIntervalMs: positive(flags.reportIntervalMs, '--report-interval-ms'),
    reportIntervalMs: positive(flags.reportIntervalMs, '--report-interval-ms'),
    recomputeIntervalMs: positive(flags.recomputeIntervalMs, '--recompute-interval-ms'),
    hysteresis: { settleRounds: positive(flags.settleRounds, '--settle-rounds', true) },
    logger,
  });
  await coordinator.start();
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      logger.info({ signal }, 'shutting down');
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      void coordinator.close().then(resolve);
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}

function positive(value: string, flag: string, zeroOk = false): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || (n === 0 && !zeroOk)) {
    const kind = zeroOk ? 'non-negative' : 'positive';
    throw new RelayError(
      'ERR_CONFIG_INVALID',
      `${flag} ${JSON.stringify(value)} is not a ${kind} integer`,
    );
  }
  return n;
}

/** `relaymesh coordinator --config cluster.yaml [--grpc-listen HOST:PORT] [--token T]` */
export function registerCoordinatorCommand(program: Command): void {
  program
    .command('coordinator')
    .description('run the coordinator: membership, latency matrix, fastest paths, route push')
    .requiredOption('--config <file>', 'cluster config (YAML): token or tokenFile, origins')
    .option('--grpc-listen <host:port>', 'gRPC listen address', '127.0.0.1:7400')
    .option('--token <token>', 'cluster token (default: RELAYMESH_TOKEN, then the config)')
    .option('--log-level <level>', 'pino log level', 'info')
    .option('--lease-ms <ms>', 'a node silent this long is down', '6000')
    .option('--warmup-ms <ms>', 'after start, wait this long before computing routes', '6000')
    .option('--report-interval-ms <ms>', 'heartbeat and report period told to nodes', '1000')
    .option('--recompute-interval-ms <ms>', 'recompute routes at most this often', '1000')
    .option(
      '--settle-rounds <n>',
      'recomputations during which a new route takes any path 2 % and 1 ms better (0: none)',
      '45',
    )
    .action(async (flags: CoordinatorFlags) => {
      try {
        await runCoordinator(flags);
      } catch (err) {
        failCommand('coordinator', err);
      }
    });
}
