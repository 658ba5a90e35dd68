import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { RelayError } from '@relaymesh/shared';

/** What a ready line told us: the ports the process listens on, plus anything else it said. */
export interface ReadyInfo {
  /** Listening ports; each is registered as an endpoint of the process's region. */
  ports: number[];
  info: Record<string, unknown>;
}

/**
 * How to start one process of the world. The coordinator and relay nodes plug in here
 * (`relaymesh coordinator ...`, `relaymesh node --egress-proxy ...`) with their own parser.
 */
export interface ProcessSpec {
  /** Unique within the world, for logs and errors. */
  name: string;
  region: string;
  command: string;
  args: string[];
  env?: Record<string, string>;
  /** @default 10000 */
  readyTimeoutMs?: number;
  /**
   * Recognises the ready line on stdout. @default {@link parseJsonReadyLine}.
   */
  parseReady?: (line: string) => ReadyInfo | undefined;
  /** Register the ready ports in the egress proxies' endpoint table. @default true */
  registerPorts?: boolean;
  /** Append every line the process writes (stdout and stderr) to this file. @default none */
  logFile?: string;
}

/** Lines of stdout/stderr kept for error messages. */
const TAIL_LINES = 20;
/** SIGTERM first; SIGKILL when the process has not exited after this. */
export const STOP_GRACE_MS = 3000;

/**
 * The default ready-line parser: a JSON line with `ready: true`; its ports are `port`, any
 * `*Port` number, any `*Ports` number list and the values of a `ports` map (so
 * `relaymesh node`'s `tunnelPort`, `httpPort`, `forwardPorts` are all registered).
 */
export function parseJsonReadyLine(line: string): ReadyInfo | undefined {
  if (!line.startsWith('{')) return undefined;
  let msg: Record<string, unknown>;
  try {
    msg = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return undefined;
  }
  if (msg.ready !== true) return undefined;
  const ports = new Set<number>();
  const add = (v: unknown) => {
    if (typeof v === 'number' && Number.isInteger(v) && v > 0) ports.add(v);
  };
  for (const [field, value] of Object.entries(msg)) {
    if (field === 'port' || field.endsWith('Port')) add(value);
    else if (field.endsWith('Ports') && Array.isArray(value)) value.forEach(add);
    else if (field === 'ports' && typeof value === 'object' && value !== null)
      Object.values(value).forEach(add);
  }
  return { ports: [...ports], info: msg };
}

/**
 * A ready-line parser for processes that log JSON (pino) instead of printing a ready line:
 * the first line whose `msg` is `msg` is the ready line, and its `field` holds the listening
 * address (`host:port`, `[v6]:port`) or port. For the coordinator:
 * `logLineReady('coordinator listening')`.
 */
export function logLineReady(
  msg: string,
  field = 'address',
): (line: string) => ReadyInfo | undefined {
  return (line) => {
    if (!line.startsWith('{')) return undefined;
    let entry: Record<string, unknown>;
    try {
      entry = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return undefined;
    }
    if (entry.msg !== msg) return undefined;
    const value = entry[field];
    const port = typeof value === 'number' ? value : Number(String(value).split(':').pop());
    return Number.isInteger(port) && port > 0 ? { ports: [port], info: entry } : undefined;
  };
}

/**
 * Every live child, so that a parent exiting for any reason (a failed test run, an uncaught
 * error) kills them: processes that are not ours (coordinator, nodes) do not watch stdin.
 */
const liveChildren = new Set<ChildProcess>();

function trackChild(child: ChildProcess): void {
  if (liveChildren.size === 0) process.once('exit', killLiveChildren);
  liveChildren.add(child);
  const forget = () => {
    liveChildren.delete(child);
    if (liveChildren.size === 0) process.off('exit', killLiveChildren);
  };
  child.once('exit', forget);
  child.once('error', forget); // spawn failed: no 'exit' follows
}

function killLiveChildren(): void {
  for (const child of liveChildren) child.kill('SIGKILL');
}

/** A child process of the world, started and ready. */
export class WorldProcess {
  readonly spec: ProcessSpec;
  readonly ready: ReadyInfo;
  readonly #child: ChildProcess;
  readonly #tail: string[];

  private constructor(spec: ProcessSpec, child: ChildProcess, ready: ReadyInfo, tail: string[]) {
    this.spec = spec;
    this.#child = child;
    this.ready = ready;
    this.#tail = tail;
  }

  get pid(): number {
    return this.#child.pid ?? -1;
  }

  get exited(): boolean {
    return this.#child.exitCode !== null || this.#child.signalCode !== null;
  }

  /** The last lines the process wrote (stdout and stderr), for diagnostics. */
  tail(): string[] {
    return [...this.#tail];
  }

  /**
   * Spawns the process and resolves when its ready line arrives.
   * @throws ERR_WORLD_PROCESS when it exits first or misses the deadline (it is killed).
   */
  static start(spec: ProcessSpec): Promise<WorldProcess> {
    const child = spawn(spec.command, spec.args, {
      env: { ...process.env, ...spec.env },
      // stdin stays open: our entries exit when it closes, so a crashed parent leaves no child.
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    trackChild(child);
    const tail: string[] = [];
    const file = spec.logFile ? createWriteStream(spec.logFile, { flags: 'a' }) : undefined;
    file?.on('error', () => {}); // diagnostics only: a full disk must not fail the world
    // 'close', not 'exit': lines still in the stdio pipes when the process exits (a crash
    // report, the last lines before a kill) are delivered after 'exit' and must reach the file.
    child.once('close', () => file?.end());
    const keep = (line: string) => {
      file?.write(`${line}\n`);
      tail.push(line.length > 500 ? `${line.slice(0, 500)}...` : line);
      if (tail.length > TAIL_LINES) tail.shift();
    };
    child.stdin?.on('error', () => {});
    createInterface({ input: child.stderr! }).on('line', keep);
    const parse = spec.parseReady ?? parseJsonReadyLine;
    return new Promise((resolve, reject) => {
      const timeoutMs = spec.readyTimeoutMs ?? 10_000;
      const timer = setTimeout(
        () => fail(`did not become ready within ${timeoutMs} ms`),
        timeoutMs,
      );
      const fail = (why: string, cause?: unknown) => {
        clearTimeout(timer);
        child.kill('SIGKILL');
        reject(
          new RelayError('ERR_WORLD_PROCESS', `world process ${spec.name} ${why}`, {
            cause,
            details: { name: spec.name, command: spec.command, pid: child.pid, tail: [...tail] },
          }),
        );
      };
      const onExit = (code: number | null, signal: string | null) =>
        fail(`exited before ready (code ${code}, signal ${signal})`);
      child.once('error', (err) => fail('could not be spawned', err));
      child.once('exit', onExit);
      const lines = createInterface({ input: child.stdout! });
      lines.on('line', (line) => {
        keep(line);
        const ready = parse(line);
        if (!ready) return;
        clearTimeout(timer);
        child.off('exit', onExit);
        resolve(new WorldProcess(spec, child, ready, tail));
      });
    });
  }

  /** SIGTERM, then SIGKILL after `graceMs`; resolves once the process has exited. Idempotent. */
  async stop(graceMs = STOP_GRACE_MS): Promise<void> {
    if (this.exited) return;
    const exited = once(this.#child, 'exit');
    this.#child.kill('SIGTERM');
    const timer = setTimeout(() => this.#child.kill('SIGKILL'), graceMs);
    await exited;
    clearTimeout(timer);
  }

  /** SIGKILL now (test failure paths). */
  kill(): void {
    if (!this.exited) this.#child.kill('SIGKILL');
  }
}
