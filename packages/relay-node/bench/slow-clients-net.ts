/**
 * Where the slow-clients bench puts its processes, and what it reads from the kernel.
 *
 * With root and iproute2, three network namespaces that the bench creates and deletes,
 * so that each leg's socket buffers are sized as in a deployment and can be told apart:
 *
 *   load ns (slow clients)         entry ns (the entry)             origin ns (bench: origin,
 *   10.77.1.1 ------ veth ------- 10.77.1.2 | 10.77.2.1 ------ veth ------ 10.77.2.2  normal client)
 *   tcp_rmem: a slow client's      tcp_notsent_lowat=16384           tcp_notsent_lowat=16384
 *   small receive buffer           (the operator setting of          (its send queues live on the
 *                                  docs/reliability.md, nothing      origin's host in a deployment)
 *                                  else)
 *
 * `net.ipv4.tcp_mem` and the `TCP: mem` of /proc/net/sockstat stay host-wide (one budget
 * for every namespace); the per-namespace sysctls above and the TcpExt counters are not.
 * Without root or `ip`, everything runs on 127.0.0.1 in the bench's namespace (`loopback`).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readlinkSync } from 'node:fs';

export interface NetPlan {
  mode: 'netns' | 'loopback';
  /** Why namespaces were not used (loopback mode). */
  reason?: string;
  /** Namespace names (netns mode). */
  ns?: { load: string; entry: string; origin: string };
  /** Address the slow clients connect to. */
  entryForLoad: string;
  /** Address the normal client (bench process) connects to. */
  entryForNormal: string;
  /** Address the entry listens on. */
  entryListen: string;
  /** Address the origin listens on and the entry connects to. */
  origin: string;
  /** Per-namespace sysctls set (netns mode). */
  sysctls?: Record<string, Record<string, string>>;
}

/** A slow client's receive buffer: min, default, max (bytes). */
export const LOAD_TCP_RMEM = '4096 16384 16384';
/**
 * tcp_notsent_lowat of the entry's and the origin's namespaces: the operator setting of
 * docs/operations.md. SLOW_LOWAT=N sets another; `off` leaves the kernel's (no limit).
 */
const LOWAT = process.env.SLOW_LOWAT ?? '16384';
if (LOWAT !== 'off' && !/^\d+$/.test(LOWAT))
  throw new Error(`SLOW_LOWAT=${LOWAT}: expected a byte count or "off"`);
const LOWAT_SYSCTL: Record<string, string> =
  LOWAT === 'off' ? {} : { 'net.ipv4.tcp_notsent_lowat': LOWAT };

export function loopbackPlan(reason: string): NetPlan {
  return {
    mode: 'loopback',
    reason,
    entryForLoad: '127.0.0.1',
    entryForNormal: '127.0.0.1',
    entryListen: '127.0.0.1',
    origin: '127.0.0.1',
  };
}

function ip(args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

function inNs(ns: string, cmd: string[]): void {
  execFileSync('ip', ['netns', 'exec', ns, ...cmd], { stdio: ['ignore', 'ignore', 'pipe'] });
}

/**
 * Creates the three namespaces and two veth pairs (names carry `tag`, e.g. the pid).
 * Returns the plan and a cleanup that deletes them (idempotent; deleting a namespace
 * deletes its veth ends). Falls back to loopback when not root or `ip` fails.
 */
export function setupNetns(tag: string): { plan: NetPlan; cleanup: () => void } {
  const none = { cleanup: () => {} };
  if (process.getuid?.() !== 0) return { plan: loopbackPlan('not root'), ...none };
  removeStale();
  const ns = { load: `rmslow-l-${tag}`, entry: `rmslow-e-${tag}`, origin: `rmslow-o-${tag}` };
  const created: string[] = [];
  const cleanup = () => {
    for (const n of created.splice(0)) {
      try {
        ip(['netns', 'del', n]);
      } catch {}
    }
  };
  const sysctls: Record<string, Record<string, string>> = {
    [ns.load]: { 'net.ipv4.tcp_rmem': LOAD_TCP_RMEM },
    [ns.entry]: {
      ...LOWAT_SYSCTL,
      ...(process.env.SLOW_BACKLOG ? { 'net.core.somaxconn': process.env.SLOW_BACKLOG } : {}),
      ...(process.env.SLOW_ENTRY_TCP_RMEM
        ? { 'net.ipv4.tcp_rmem': process.env.SLOW_ENTRY_TCP_RMEM }
        : {}),
    },
    [ns.origin]: { ...LOWAT_SYSCTL },
  };
  try {
    for (const n of [ns.load, ns.entry, ns.origin]) {
      ip(['netns', 'add', n]);
      created.push(n);
      inNs(n, ['ip', 'link', 'set', 'lo', 'up']);
      for (const [k, v] of Object.entries(sysctls[n] ?? {}))
        inNs(n, ['sysctl', '-qw', `${k}=${v}`]);
    }
    const pair = (a: string, aNs: string, aIp: string, b: string, bNs: string, bIp: string) => {
      ip(['link', 'add', a, 'netns', aNs, 'type', 'veth', 'peer', 'name', b, 'netns', bNs]);
      inNs(aNs, ['ip', 'addr', 'add', `${aIp}/24`, 'dev', a]);
      inNs(bNs, ['ip', 'addr', 'add', `${bIp}/24`, 'dev', b]);
      inNs(aNs, ['ip', 'link', 'set', a, 'up']);
      inNs(bNs, ['ip', 'link', 'set', b, 'up']);
    };
    pair('vl', ns.load, '10.77.1.1', 've1', ns.entry, '10.77.1.2');
    pair('ve2', ns.entry, '10.77.2.1', 'vo', ns.origin, '10.77.2.2');
  } catch (err) {
    cleanup();
    const msg = (err as { stderr?: Buffer }).stderr?.toString().trim() || (err as Error).message;
    return { plan: loopbackPlan(`network namespaces unavailable: ${msg}`), ...none };
  }
  return {
    plan: {
      mode: 'netns',
      ns,
      entryForLoad: '10.77.1.2',
      entryForNormal: '10.77.2.1',
      entryListen: '0.0.0.0',
      origin: '10.77.2.2',
      sysctls,
    },
    cleanup,
  };
}

/** Deletes namespaces of earlier runs whose bench process is gone (killed with SIGKILL). */
function removeStale(): void {
  let names: string;
  try {
    names = execFileSync('ip', ['netns', 'list'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    });
  } catch {
    return;
  }
  for (const m of names.matchAll(/^(rmslow-[leo]-(\d+))\b/gm)) {
    if (existsSync(`/proc/${m[2]}`)) continue;
    try {
      ip(['netns', 'del', m[1] as string]);
    } catch {}
  }
}

/** Command prefix that runs a program in `ns` (none in loopback mode). */
export function nsPrefix(ns: string | undefined): string[] {
  return ns ? ['ip', 'netns', 'exec', ns] : [];
}

/** Network namespace identity of a process (`net:[4026531840]`), or '' if unreadable. */
function netnsOf(pid: number | 'self'): string {
  try {
    return readlinkSync(`/proc/${pid}/ns/net`);
  } catch {
    return '';
  }
}

/** A TcpExt counter summed over the distinct network namespaces of `pids`; NaN if unreadable. */
export function tcpExtSum(name: string, pids: Array<number | 'self'>): number {
  const seen = new Set<string>();
  let sum = 0;
  for (const pid of pids) {
    const id = netnsOf(pid);
    if (seen.has(id)) continue;
    seen.add(id);
    sum += tcpExtOf(name, pid);
  }
  return sum;
}

/** A TcpExt counter of a process's network namespace (/proc/PID/net/netstat); NaN when unreadable. */
export function tcpExtOf(name: string, pid: number | 'self'): number {
  try {
    const lines = readFileSync(`/proc/${pid}/net/netstat`, 'utf8').split('\n');
    for (let i = 0; i + 1 < lines.length; i++) {
      if (!lines[i]?.startsWith('TcpExt:')) continue;
      const keys = (lines[i] as string).split(' ');
      const values = (lines[i + 1] as string).split(' ');
      const at = keys.indexOf(name);
      return at < 0 ? Number.NaN : Number(values[at]);
    }
  } catch {}
  return Number.NaN;
}

/** Kernel memory of one leg's sockets, from `ss -tm` (skmem r + w + f, bytes). */
export interface LegMemory {
  sockets: number;
  /** Bytes in receive queues (skmem r). */
  recvBytes: number;
  /** Bytes queued to send (skmem w: sent-not-acked and not sent). */
  sendBytes: number;
  /** Memory reserved ahead (skmem f), also charged to tcp_mem. */
  reservedBytes: number;
}

export interface EntryLegs {
  /** The entry's sockets to its clients (local port = the entry's port). */
  client: LegMemory;
  /** The entry's sockets to the origin (remote port = the origin's port). */
  origin: LegMemory;
}

const SKMEM = /skmem:\(r(\d+),rb\d+,t\d+,tb\d+,f(\d+),w(\d+)/;

function emptyLeg(): LegMemory {
  return { sockets: 0, recvBytes: 0, sendBytes: 0, reservedBytes: 0 };
}

/** Every TCP socket of a namespace's memory (skmem r + w + f, bytes); undefined if `ss` fails. */
export function nsSocketBytes(ns: string): number | undefined {
  const out = ssOut(ns);
  if (out === undefined) return undefined;
  let sum = 0;
  for (const line of out.split('\n')) {
    const m = SKMEM.exec(line);
    if (m) sum += Number(m[1]) + Number(m[2]) + Number(m[3]);
  }
  return sum;
}

function ssOut(ns: string | undefined): string | undefined {
  try {
    const [cmd = 'ss', ...rest] = [...nsPrefix(ns), 'ss', '-tmnpHO', 'state', 'established'];
    return execFileSync(cmd, rest, {
      encoding: 'utf8',
      maxBuffer: 256 * 1024 * 1024,
      stdio: ['ignore', 'pipe', 'ignore'],
    });
  } catch {
    return undefined;
  }
}

/**
 * The entry process's two legs, read with `ss -tmnp` in the entry's namespace (`ns`, or
 * this one) and filtered by its pid and ports. Undefined when `ss` fails.
 */
export function entryLegs(
  ns: string | undefined,
  pid: number,
  entryPort: number,
  originPort: number,
): EntryLegs | undefined {
  const out = ssOut(ns);
  if (out === undefined) return undefined;
  const legs: EntryLegs = { client: emptyLeg(), origin: emptyLeg() };
  // `ss -tmnpHO`: one line per socket, Recv-Q Send-Q Local Peer users:(...) skmem:(...).
  for (const line of out.split('\n')) {
    if (!line.includes(`pid=${pid},`)) continue;
    const cols = line.trim().split(/\s+/);
    const local = cols[2] ?? '';
    const peer = cols[3] ?? '';
    const leg = local.endsWith(`:${entryPort}`)
      ? legs.client
      : peer.endsWith(`:${originPort}`)
        ? legs.origin
        : undefined;
    const m = SKMEM.exec(line);
    if (!leg || !m) continue;
    leg.sockets += 1;
    leg.recvBytes += Number(m[1]);
    leg.reservedBytes += Number(m[2]);
    leg.sendBytes += Number(m[3]);
  }
  return legs;
}
