import { readFileSync } from 'node:fs';
import { createRootLogger, type Logger } from '@relaymesh/shared';
import { pino } from 'pino';

/** Something a process entry keeps alive until told to stop. */
export interface Closable {
  close(): Promise<void>;
}

/**
 * Shared life of the world's process entries: config as JSON from argv (`'{...}'` or
 * `--config FILE`), logs as JSON on stderr (stdout carries only the ready line), exit on
 * SIGTERM/SIGINT. With `--exit-with-parent` (the runner passes it) it also exits when stdin
 * closes, so a child never outlives a parent that died.
 */
export async function runEntry(
  name: string,
  start: (config: unknown, log: Logger) => Promise<{ resource: Closable; ready: object }>,
): Promise<void> {
  const log = createRootLogger({
    name,
    level: process.env.WORLD_LOG_LEVEL ?? 'warn',
    destination: pino.destination(2),
  });
  const config = readConfig(process.argv.slice(2));
  const { resource, ready } = await start(config, log);
  let stopping = false;
  const stop = (why: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ why }, 'stopping');
    const force = setTimeout(() => process.exit(0), 2000);
    force.unref();
    resource.close().finally(() => process.exit(0));
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
  if (process.argv.includes('--exit-with-parent')) {
    process.stdin.on('end', () => stop('stdin closed'));
    process.stdin.on('error', () => stop('stdin error'));
    process.stdin.resume();
  }
  process.stdout.write(`${JSON.stringify({ ready: true, pid: process.pid, ...ready })}\n`);
}

function readConfig(argv: string[]): unknown {
  const i = argv.indexOf('--config');
  const positional = argv.find((a) => !a.startsWith('--'));
  const text = i >= 0 ? readFileSync(argv[i + 1] ?? '', 'utf8') : (positional ?? '{}');
  return JSON.parse(text);
}

/** Top-level failure: one JSON line on stderr, exit 1. */
export function failEntry(err: unknown): void {
  process.stderr.write(
    `${JSON.stringify({ level: 'fatal', msg: 'failed to start', err: String(err) })}\n`,
  );
  process.exit(1);
}
