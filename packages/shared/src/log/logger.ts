import { type Logger, type LoggerOptions, pino } from 'pino';

export type { Logger } from 'pino';

/** Paths pino censors in every log line. Static: never derived from input. */
export const REDACT_PATHS = [
  'token',
  'auth.token',
  'config.token',
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["proxy-authorization"]',
  'headers.authorization',
  'headers["proxy-authorization"]',
];

export interface RootLoggerOptions {
  /** Process role: 'relay-node', 'coordinator', 'cli', ... */
  name: string;
  /** @default 'info' */
  level?: string;
  /** Fields on every line (nodeId, region). */
  base?: Record<string, unknown>;
  /** Where lines go; @default stdout (fd 1). */
  destination?: pino.DestinationStream;
}

/** Builds the root logger. Only the CLI calls this; components take a logger and make a child. */
export function createRootLogger(options: RootLoggerOptions): Logger {
  const opts: LoggerOptions = {
    name: options.name,
    level: options.level ?? 'info',
    base: { pid: process.pid, ...options.base },
    serializers: { err: pino.stdSerializers.errWithCause },
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
  };
  return options.destination ? pino(opts, options.destination) : pino(opts);
}

/** A logger that writes nothing: the default for library entry points and tests. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
