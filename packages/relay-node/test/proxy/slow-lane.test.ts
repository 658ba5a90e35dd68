import { readdirSync } from 'node:fs';
import type http from 'node:http';
import type { AddressInfo } from 'node:net';
import net from 'node:net';
import { PassThrough } from 'node:stream';
import { createRootLogger, DirectDialer, type Logger } from '@relaymesh/shared';
import { afterEach, describe, expect, it } from 'vitest';
import { DataPlane, OriginTable, RouteTable, Session, StreamTransport } from '../../src/index.ts';
import { createMemoryPair } from '../../src/mux/memory-pair.ts';
import type { EntryServer } from '../../src/proxy/http/entry-server.ts';
import { allowedCpus } from '../../src/proxy/lane/renice.ts';
import { SlowLane } from '../../src/proxy/lane/slow-lane.ts';
import type { HopStream } from '../../src/proxy/types.ts';
import { statField } from '../proc.ts';
import {
  patternBody,
  peerlessEntryPlane,
  peerlessTables,
  readRawBody,
  saturatedLoop,
  startOrigin,
  type TestOrigin,
  writeAll,
} from './mesh.ts';

// The slow lane (src/proxy/lane/): a client address that holds many parked responses has
// its new connections served by a process of its own at a lower priority. Real processes
// and sockets: the acceptor process, the lane process, TCP clients from 127.0.0.2/.3.

// Enough that a paused loopback client stalls with the origin still sending (park.test.ts).
const TOTAL = 128 * 1024 * 1024;
const { bytes: body, sha: expectedSha } = patternBody('lane', TOTAL);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(what: string, ok: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for: ${what}`);
    await sleep(20);
  }
}

/** GET /big (TOTAL bytes, resumable: ETag and Range) and GET /small ("hello"). */
function originHandler(req: http.IncomingMessage, res: http.ServerResponse): void {
  req.resume();
  if (req.url === '/small') {
    res.writeHead(200, { 'content-length': 5 });
    res.end('hello');
    return;
  }
  const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
  const ranged = m !== null && req.headers['if-range'] === '"v1"';
  const from = ranged ? Number(m?.[1]) : 0;
  const headers: http.OutgoingHttpHeaders = { 'content-length': TOTAL - from, etag: '"v1"' };
  if (ranged) headers['content-range'] = `bytes ${from}-${TOTAL - 1}/${TOTAL}`;
  res.writeHead(ranged ? 206 : 200, headers);
  writeAll(res, body(from, TOTAL));
}

interface Line {
  msg: string;
  [k: string]: unknown;
}

function capture(): { logger: Logger; lines: Line[] } {
  const lines: Line[] = [];
  const sink = new PassThrough();
  let rest = '';
  sink.on('data', (d: Buffer) => {
    rest += d.toString();
    const parts = rest.split('\n');
    rest = parts.pop() ?? '';
    for (const p of parts) if (p) lines.push(JSON.parse(p) as Line);
  });
  return { logger: createRootLogger({ name: 't', level: 'info', destination: sink }), lines };
}

let origin: TestOrigin | undefined;
const planes: DataPlane[] = [];
const sockets: net.Socket[] = [];
const sessions: Session[] = [];
const lanes: SlowLane[] = [];
const cleanups: Array<() => void> = [];

afterEach(async () => {
  for (const c of cleanups.splice(0)) c();
  for (const l of lanes.splice(0)) l.destroy();
  for (const s of sockets.splice(0)) s.destroy();
  for (const p of planes.splice(0)) await p.destroy();
  for (const s of sessions.splice(0)) s.destroy();
  await origin?.close();
  origin = undefined;
});

interface Setup {
  port: number;
  en: DataPlane;
  lines: Line[];
}

/**
 * Entry `en` with an acceptor process and a slow lane (nice 10). `relayed`: the origin is
 * reached through exit `ex`, joined to `en` by a mux session (path [en, ex]); else `en` is
 * its own exit.
 */
async function setup(
  o: {
    relayed?: boolean;
    releaseMs?: number;
    busyConnectionRate?: number;
    afterWaiting?: number;
    afterConnects?: number;
    start?: 'listen' | 'burst';
  } = {},
): Promise<Setup> {
  origin = await startOrigin(originHandler);
  const catalog = new OriginTable([{ name: 'o', hosts: ['o.test'], upstreams: [origin.url] }]);
  const { logger, lines } = capture();
  const path = o.relayed ? ['en', 'ex'] : ['en'];
  const routes = new RouteTable({ nodeId: 'en' });
  routes.update([{ from: 'en', origin: 'o', path, rttMs: 1, alternates: [] }]);
  let toEx: Session | undefined;
  if (o.relayed) {
    const ex = new DataPlane({
      nodeId: 'ex',
      catalog,
      routes: new RouteTable({ nodeId: 'ex' }),
      opener: {
        open() {
          throw new Error('exit: no peers');
        },
      },
      dialer: new DirectDialer(),
      exit: { healthChecks: false },
    });
    planes.push(ex);
    const [a, b] = createMemoryPair();
    toEx = new Session({ transport: new StreamTransport(a), role: 'client' });
    const atEx = new Session({ transport: new StreamTransport(b), role: 'server' });
    sessions.push(toEx, atEx);
    atEx.on('stream', (s) => ex.handleStream(s as HopStream));
  }
  const en = new DataPlane({
    nodeId: 'en',
    catalog,
    routes,
    opener: {
      open(peer) {
        if (peer !== 'ex' || !toEx) throw new Error(`no session to ${peer}`);
        return toEx.open() as HopStream;
      },
    },
    dialer: new DirectDialer(),
    httpListen: { host: '127.0.0.1', port: 0 },
    debugHeaders: true,
    logger,
    entry: {
      acceptor: 'process',
      parkAfterMs: 200,
      sendTimeoutMs: 0,
      slowLaneAfterParked: 2,
      slowLaneReleaseMs: o.releaseMs ?? 60_000,
      ...(o.busyConnectionRate === undefined ? {} : { busyConnectionRate: o.busyConnectionRate }),
      ...(o.afterWaiting === undefined ? {} : { slowLaneAfterWaiting: o.afterWaiting }),
      ...(o.afterConnects === undefined ? {} : { slowLaneAfterConnects: o.afterConnects }),
      ...(o.start === undefined ? {} : { slowLaneStart: o.start }),
    },
    exit: { healthChecks: false },
    slowLane: { nice: 10, logLevel: 'warn' },
  });
  planes.push(en);
  const { http: address } = await en.start();
  return { port: (address as AddressInfo).port, en, lines };
}

/** GET `path` from `from` and does not read (paused): its response stalls, then parks. */
function paused(port: number, from: string, path = '/big'): net.Socket {
  const c = net.connect({ port, host: '127.0.0.1', localAddress: from });
  c.on('error', () => {});
  c.write(`GET ${path} HTTP/1.1\r\nHost: o.test\r\n\r\n`);
  c.pause();
  sockets.push(c);
  return c;
}

/** GET /small from `from` on a new connection: the whole answer ('' if closed without one). */
function small(port: number, from: string): Promise<string> {
  const c = net.connect({ port, host: '127.0.0.1', localAddress: from });
  sockets.push(c);
  c.on('error', () => {});
  c.write('GET /small HTTP/1.1\r\nHost: o.test\r\nConnection: close\r\n\r\n');
  let got = '';
  c.on('data', (d: Buffer) => {
    got += d.toString('latin1');
  });
  return new Promise((r) => c.once('close', () => r(got)));
}

/** A field of /proc/PID/task/TID/stat for every thread of `pid`: 19 nice, 41 policy. */
function threadField(pid: number, field: 19 | 41): number[] {
  return readdirSync(`/proc/${pid}/task`).map((tid) =>
    Number(statField(`/proc/${pid}/task/${tid}/stat`, field)),
  );
}
const threadNices = (pid: number) => threadField(pid, 19);
/** Scheduling policies: 0 SCHED_OTHER, 5 SCHED_IDLE. */
const threadPolicies = (pid: number) => threadField(pid, 41);

/** `Cpus_allowed_list` of every thread of `pid` (of this process: 'self'). */
function threadCpus(pid: number | 'self'): string[] {
  return readdirSync(`/proc/${pid}/task`).map(
    (tid) => allowedCpus(`/proc/${pid}/task/${tid}/status`) ?? '?',
  );
}

const msgs = (lines: Line[], msg: string) => lines.filter((l) => l.msg === msg);

/**
 * Saturates this process's event loop (the entry's), then GETs /small from 127.0.0.3 once
 * and, 300 ms later, `n` times more: the gate throttles once it has sampled a saturated
 * slice (on the first connection), and the others wait in the acceptor.
 */
async function flood(
  port: number,
  n: number,
): Promise<{ answers: Array<Promise<string>>; stop: () => void }> {
  const stop = await saturatedLoop((s) => cleanups.push(s));
  const answers = [small(port, '127.0.0.3')];
  await sleep(300);
  for (let i = 0; i < n; i++) answers.push(small(port, '127.0.0.3'));
  return { answers, stop };
}

/**
 * {@link setup}, then two paused clients from 127.0.0.2 park here and send the address to
 * the lane, and a third (paused, a download) is served there.
 */
async function oneClientInLane(): Promise<Setup & { entry: EntryServer; inLane: net.Socket }> {
  const s = await setup();
  const entry = s.en.entry;
  if (!entry) throw new Error('no entry');
  paused(s.port, '127.0.0.2');
  paused(s.port, '127.0.0.2');
  await until('sorted', () => (entry.slowLane?.sources.length ?? 0) === 1);
  const inLane = paused(s.port, '127.0.0.2');
  await until('in the lane', () => (entry.slowLane?.clients ?? 0) === 1);
  return { ...s, entry, inLane };
}

/** A lane of its own (no entry), with no origins and no peers; destroyed after the test. */
function peerlessLane(o: { nice?: number; policy?: 'idle' | 'nice'; cpus?: string }): SlowLane {
  const lane = new SlowLane({
    ...peerlessTables(),
    ...o,
    logLevel: 'warn',
    log: capture().logger,
  });
  lanes.push(lane);
  return lane;
}

describe('slow lane', () => {
  it('sends an address with parked responses to the lane (every thread at nice 10 and SCHED_IDLE), keeps others, and brings it back', {
    timeout: 60_000,
  }, async () => {
    const { port, en, lines } = await setup({ releaseMs: 1_000 });
    const entry = en.entry;
    if (!entry) throw new Error('no entry');
    const lane = () => entry.slowLane;
    // No lane process until an address needs one.
    await sleep(600);
    expect(lane()).toMatchObject({ up: false, pid: undefined, handed: 0, sources: [] });
    // Two clients from 127.0.0.2 stop reading: both park here, the lane starts, and the
    // address is sent there.
    paused(port, '127.0.0.2');
    paused(port, '127.0.0.2');
    await until('two parked', () => entry.stalls.parkedNow === 2);
    await until('sorted', () => (lane()?.sources.length ?? 0) === 1);
    expect(lane()?.sources).toEqual(['127.0.0.2']);
    expect(msgs(lines, 'slow lane started')).toHaveLength(1);
    expect(new Set(threadNices(lane()?.pid as number))).toEqual(new Set([10]));
    expect(new Set(threadPolicies(lane()?.pid as number))).toEqual(new Set([5]));
    expect(lane()?.idle).toBe(true);
    expect(msgs(lines, 'client address sent to the slow lane')).toMatchObject([
      { remote: '127.0.0.2', parked: 2 },
    ]);
    // A new connection from 127.0.0.2 is served by the lane; one from 127.0.0.3 here.
    const clientsHere = entry.clients;
    expect(await small(port, '127.0.0.2')).toMatch(/^HTTP\/1\.1 200 [\s\S]*\r\n\r\nhello$/);
    expect(lane()?.handed).toBe(1);
    expect(await small(port, '127.0.0.3')).toMatch(/^HTTP\/1\.1 200 [\s\S]*\r\n\r\nhello$/);
    expect(lane()?.handed).toBe(1);
    expect(entry.clients).toBe(clientsHere);
    // A download in the lane stalls and parks there, then resumes whole when read.
    const inLane = paused(port, '127.0.0.2');
    await until('parked in the lane', () => (lane()?.parkedNow ?? 0) === 1);
    expect(lane()?.handed).toBe(2);
    const r = await readRawBody(inLane, TOTAL);
    expect(r.head).toMatch(/^HTTP\/1\.1 200 /);
    expect(r).toMatchObject({ bytes: TOTAL, sha: expectedSha });
    inLane.destroy();
    // Nothing parked from 127.0.0.2 anywhere for the release time: it comes back.
    for (const s of sockets) s.destroy();
    await until('released', () => lane()?.sources.length === 0);
    expect(msgs(lines, 'client address back from the slow lane')).toMatchObject([
      { remote: '127.0.0.2' },
    ]);
    expect(await small(port, '127.0.0.2')).toMatch(/\r\n\r\nhello$/);
    expect(lane()?.handed).toBe(2);
  });

  it("starts the lane process when the entry's loop saturates, before any address needs it; sends none there", {
    timeout: 60_000,
  }, async () => {
    const { port, en, lines } = await setup({ busyConnectionRate: 4 });
    const entry = en.entry;
    if (!entry) throw new Error('no entry');
    const { answers, stop } = await flood(port, 24);
    await until(
      'gate throttled',
      () => msgs(lines, 'event loop saturated: new connections wait for admission').length === 1,
    );
    await until('lane up', () => entry.slowLane?.up === true, 30_000);
    stop();
    expect(msgs(lines, 'slow lane starting')).toMatchObject([{ reason: 'event loop saturated' }]);
    expect(msgs(lines, 'slow lane started')).toHaveLength(1);
    expect(new Set(threadNices(entry.slowLane?.pid as number))).toEqual(new Set([10]));
    // Nothing parked: every answer came from the entry, no address went to the lane.
    for (const a of await Promise.all(answers)) expect(a).toMatch(/\r\n\r\nhello$/);
    expect(entry.slowLane).toMatchObject({ handed: 0, sources: [] });
    expect(msgs(lines, 'client address sent to the slow lane')).toHaveLength(0);
  });

  it('sends an address flooding the gate to the lane before any of its responses parks; the lane answers those that waited', {
    timeout: 60_000,
  }, async () => {
    const { port, en, lines } = await setup({ busyConnectionRate: 2, afterWaiting: 8 });
    const entry = en.entry;
    if (!entry) throw new Error('no entry');
    // 2 let in a second: over 8 still wait ~15 s later, even if the lane, started by this
    // flood, is slow to come up on a busy host.
    const { answers, stop } = await flood(port, 40);
    await until('sorted', () => (entry.slowLane?.sources.length ?? 0) === 1, 30_000);
    stop();
    expect(entry.slowLane?.sources).toEqual(['127.0.0.3']);
    const sent = msgs(lines, 'client address sent to the slow lane');
    expect(sent).toMatchObject([{ remote: '127.0.0.3', laneAfterWaiting: 8 }]);
    expect(sent[0]?.waiting).toBeGreaterThanOrEqual(8);
    expect(sent[0]?.parked).toBeUndefined();
    expect(entry.stalls.parkedNow).toBe(0);
    // Every one answered: those let in before by the entry, those still waiting by the lane.
    for (const a of await Promise.all(answers)) expect(a).toMatch(/\r\n\r\nhello$/);
    expect(entry.slowLane?.handed).toBeGreaterThanOrEqual(8);
    expect(await small(port, '127.0.0.3')).toMatch(/\r\n\r\nhello$/);
    expect(await small(port, '127.0.0.4')).toMatch(/\r\n\r\nhello$/);
    expect(entry.slowLane?.sources).toEqual(['127.0.0.3']);
  });

  it('sends an address opening slowLaneAfterConnects connections within a second to the lane, before any waits or parks; starts the lane first', {
    timeout: 60_000,
  }, async () => {
    const { port, en, lines } = await setup({ afterConnects: 16 });
    const entry = en.entry;
    if (!entry) throw new Error('no entry');
    const burst = async () => {
      const answers = Array.from({ length: 20 }, () => small(port, '127.0.0.3'));
      for (const a of await Promise.all(answers)) expect(a).toMatch(/\r\n\r\nhello$/);
    };
    // 20 at once, the entry idle: the 16th within the second reports the address, and with
    // no lane up yet, the report starts one (the address stays here meanwhile).
    await burst();
    await until('lane up', () => entry.slowLane?.up === true, 30_000);
    expect(msgs(lines, 'slow lane starting')).toMatchObject([
      { reason: 'a client address floods the entry' },
    ]);
    expect(entry.slowLane).toMatchObject({ handed: 0, sources: [] });
    // The next second's 16th sends it: its later connections are the lane's.
    await sleep(1_000);
    await burst();
    await until('sorted', () => (entry.slowLane?.sources.length ?? 0) === 1);
    const sent = msgs(lines, 'client address sent to the slow lane');
    expect(sent).toMatchObject([{ remote: '127.0.0.3', connects: 16, laneAfterConnects: 16 }]);
    expect(sent[0]?.waiting).toBeUndefined();
    expect(entry.stalls.parkedNow).toBe(0);
    const handed = entry.slowLane?.handed ?? 0;
    expect(await small(port, '127.0.0.3')).toMatch(/\r\n\r\nhello$/);
    expect(entry.slowLane?.handed).toBe(handed + 1);
    expect(await small(port, '127.0.0.4')).toMatch(/\r\n\r\nhello$/);
    expect(entry.slowLane?.handed).toBe(handed + 1);
    expect(entry.slowLane?.sources).toEqual(['127.0.0.3']);
  });

  it("slowLaneStart 'listen' starts the lane with the entry, before any connection; anything else is refused", {
    timeout: 30_000,
  }, async () => {
    const { en, lines } = await setup({ start: 'listen' });
    const entry = en.entry;
    if (!entry) throw new Error('no entry');
    expect(msgs(lines, 'slow lane starting')).toMatchObject([{ reason: 'started with the entry' }]);
    await until('lane up', () => entry.slowLane?.up === true, 20_000);
    expect(entry.slowLane).toMatchObject({ handed: 0, sources: [] });
    expect(new Set(threadNices(entry.slowLane?.pid as number))).toEqual(new Set([10]));
    const bad = () =>
      peerlessEntryPlane(
        { acceptor: 'process', slowLaneStart: 'soon' as 'listen' },
        { slowLane: {} },
      );
    expect(bad).toThrow(/slowLaneStart: soon is not listen or burst/);
    expect(() =>
      peerlessEntryPlane({ acceptor: 'process', slowLaneAfterConnects: 1.5 }, { slowLane: {} }),
    ).toThrow(/slowLaneAfterConnects/);
  });

  it('forks the lane at its nice value: its first thread runs lowered before any of its code', {
    timeout: 30_000,
  }, async () => {
    const lane = peerlessLane({ nice: 7, policy: 'nice' });
    const up = lane.start();
    // Read at once: the lane's own renice (lane-main.ts) runs only after Node and tsx have
    // loaded, hundreds of milliseconds later.
    const pid = lane.stats.pid as number;
    expect(Number(statField(`/proc/${pid}/stat`, 19))).toBe(7);
    await up;
    expect(new Set(threadNices(pid))).toEqual(new Set([7]));
    // policy 'nice': no SCHED_IDLE.
    expect(new Set(threadPolicies(pid))).toEqual(new Set([0]));
  });

  it('without chrt the lane runs at its nice value alone; a policy it does not know is refused', {
    timeout: 30_000,
  }, async () => {
    expect(() => peerlessLane({ policy: 'realtime' as 'idle' })).toThrow(
      /slow lane policy: realtime is not idle or nice/,
    );
    const lane = peerlessLane({ policy: 'idle' });
    // The lane's environment is the node's at the fork: a PATH with no chrt on it (the
    // lane's node is process.execPath, found without PATH).
    const path = process.env.PATH;
    process.env.PATH = '/nonexistent';
    let up: Promise<void>;
    try {
      up = lane.start();
    } finally {
      process.env.PATH = path;
    }
    await up;
    // It runs, at its nice value alone, and says so (its warning goes to its stderr).
    const pid = lane.stats.pid as number;
    expect(lane.stats).toMatchObject({ up: true, idle: false });
    expect(new Set(threadNices(pid))).toEqual(new Set([10]));
    expect(new Set(threadPolicies(pid))).toEqual(new Set([0]));
  });

  it('moves every thread of the lane to the CPUs asked for; where it cannot, the lane runs where the node does; a malformed list is refused', {
    timeout: 30_000,
  }, async () => {
    expect(() => peerlessLane({ cpus: 'one' })).toThrow(/slow lane CPUs: "one" is not a CPU list/);
    expect(() => peerlessLane({ cpus: '1,' })).toThrow(/is not a CPU list/);
    // The last CPU this process may use: a list of one, unlike this process's own on any
    // host with two cores or more.
    const ours = threadCpus('self')[0] as string;
    const last = Math.max(...ours.split(',').map((r) => Number(r.split('-').at(-1))));
    const lane = peerlessLane({ cpus: String(last) });
    await lane.start();
    const pid = lane.stats.pid as number;
    expect(lane.stats).toMatchObject({ up: true, cpus: String(last) });
    expect(new Set(threadCpus(pid))).toEqual(new Set([String(last)]));
    // A CPU no host here has: taskset fails, the lane serves on the node's CPUs and says
    // which (its warning goes to its stderr).
    const stray = peerlessLane({ cpus: '4000' });
    await stray.start();
    expect(stray.stats).toMatchObject({ up: true, cpus: ours });
    expect(new Set(threadCpus(stray.stats.pid as number))).toEqual(new Set([ours]));
  });

  it("serves a relayed route from the lane: its stream goes out on the node's session to the exit", {
    timeout: 60_000,
  }, async () => {
    const { port, en } = await setup({ relayed: true });
    const entry = en.entry;
    if (!entry) throw new Error('no entry');
    paused(port, '127.0.0.2');
    paused(port, '127.0.0.2');
    await until('sorted', () => (entry.slowLane?.sources.length ?? 0) === 1);
    const answer = await small(port, '127.0.0.2');
    expect(answer).toMatch(/^HTTP\/1\.1 200 /);
    expect(answer.toLowerCase()).toContain('x-relaymesh-path: en,ex');
    expect(answer).toMatch(/\r\n\r\nhello$/);
    expect(entry.slowLane?.handed).toBe(1);
  });

  it('replaces a lane that died; meanwhile the entry serves the address itself', {
    timeout: 60_000,
  }, async () => {
    const { port, entry, lines, inLane } = await oneClientInLane();
    const pid = entry.slowLane?.pid as number;
    process.kill(pid, 'SIGKILL');
    // Its connection goes with it: what was sent arrives, then the end, short of the body.
    await expect(readRawBody(inLane, TOTAL)).rejects.toThrow(/^closed after \d+ body bytes$/);
    const died =
      'slow lane process died: its client connections are lost; the entry serves new ones until it is replaced';
    await until('death seen', () => msgs(lines, died).length === 1);
    // No lane for now (it is replaced after 100 ms and a start): served here.
    const handedBefore = entry.slowLane?.handed;
    expect(entry.slowLane?.up).toBe(false);
    expect(await small(port, '127.0.0.2')).toMatch(/\r\n\r\nhello$/);
    expect(entry.slowLane?.handed).toBe(handedBefore);
    await until('replaced', () => msgs(lines, 'slow lane process replaced').length === 1);
    const lane = entry.slowLane;
    expect(lane).toMatchObject({ up: true, restarts: 1, sources: ['127.0.0.2'] });
    expect(lane?.pid).not.toBe(pid);
    const handed = lane?.handed ?? 0;
    expect(await small(port, '127.0.0.2')).toMatch(/\r\n\r\nhello$/);
    expect(entry.slowLane?.handed).toBe(handed + 1);
  });

  it('drains with the entry: a download in the lane finishes, then the lane exits', {
    timeout: 60_000,
  }, async () => {
    const { en, entry, inLane } = await oneClientInLane();
    const pid = entry.slowLane?.pid as number;
    // The parked ones here are closed by the drain only once they finish: let them go.
    for (const s of sockets) if (s !== inLane) s.destroy();
    const closing = en.close();
    const closed = new Promise<void>((r) => inLane.once('close', () => r()));
    const r = await readRawBody(inLane, TOTAL);
    expect(r).toMatchObject({ bytes: TOTAL, sha: expectedSha });
    // Its head went before the drain: the lane closes the connection after the body.
    await closed;
    await closing;
    expect(() => process.kill(pid, 0)).toThrow();
  });
});
