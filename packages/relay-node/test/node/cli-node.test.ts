import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queryNodes, queryRoutes } from '../../src/control/queries.ts';
import { HEAP_FLOOR_FLAG } from '../../src/node/gc-tuning.ts';
import { MALLOC_TUNABLE, onGlibc } from '../../src/node/malloc-tuning.ts';
import { statField } from '../proc.ts';
import { get, ORIGIN_HOST, startBlockingProxy, startOrigin, TOKEN, waitFor } from './helpers.ts';

// A real coordinator and three real `relaymesh node` processes on loopback:
// `pnpm exec tsc -b` first. Node a sits behind an egress proxy that refuses the origin's
// port, so its requests must cross the mesh to b or c.
const BIN = fileURLToPath(new URL('../../bin/relaymesh.js', import.meta.url));
const DIST = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));
const ENV = { ...process.env, RELAYMESH_TOKEN: TOKEN };

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

interface Ready {
  ready: true;
  id: string;
  tunnelPort: number;
  httpPort: number;
  ports: Record<string, number>;
}

interface Proc {
  child: ChildProcess;
  ready: Ready;
  stderr: () => string;
}

function run(args: string[], env: NodeJS.ProcessEnv = ENV): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { env });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Spawns `relaymesh node ...` and waits for its one-line JSON ready announcement. */
async function startNode(args: string[], nodeFlags: string[] = []): Promise<Proc> {
  const child = spawn(process.execPath, [...nodeFlags, BIN, 'node', ...args], { env: ENV });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d) => {
    out += d;
  });
  child.stderr!.on('data', (d) => {
    err += d;
  });
  children.push(child);
  const line = await waitFor(
    () => {
      if (child.exitCode !== null) throw new Error(`node exited ${child.exitCode}: ${err}`);
      return out.includes('\n') ? out.split('\n')[0] : undefined;
    },
    10_000,
    'node ready line',
  );
  return { child, ready: JSON.parse(line as string) as Ready, stderr: () => err };
}

/** The pids of a process's children (each of its threads' `children` file). */
function kidsOf(pid: number): number[] {
  return readdirSync(`/proc/${pid}/task`).flatMap((t) =>
    readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8')
      .split(/\s+/)
      .filter(Boolean)
      .map(Number),
  );
}

/** A process's main thread's nice value. */
const niceOf = (pid: number): number => Number(statField(`/proc/${pid}/stat`, 19));

const children: ChildProcess[] = [];
const closers: Array<() => unknown> = [];
let address = '';
let dir = '';
const procs = new Map<string, Proc>();

function proc(id: string): Proc {
  const p = procs.get(id);
  if (!p) throw new Error(`no node ${id}`);
  return p;
}

beforeAll(async () => {
  if (!existsSync(DIST)) throw new Error('CLI not built: run `pnpm exec tsc -b` first');
  const origin = await startOrigin();
  closers.push(() => origin.close());
  dir = mkdtempSync(path.join(tmpdir(), 'relaymesh-node-'));
  const cfg = path.join(dir, 'cluster.yaml');
  writeFileSync(
    cfg,
    `origins:\n  - name: files\n    hosts: [${ORIGIN_HOST}]\n    upstreams: ["http://127.0.0.1:${origin.port}"]\n`,
  );
  const coordinator = spawn(
    process.execPath,
    [BIN, 'coordinator', '--config', cfg, '--grpc-listen', '127.0.0.1:0', '--warmup-ms', '0'],
    { env: ENV, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  children.push(coordinator);
  let out = '';
  coordinator.stdout!.on('data', (d) => {
    out += d;
  });
  address = await waitFor(() => /"address":"([^"]+)"/.exec(out)?.[1], 10_000, 'coordinator');

  const proxy = await startBlockingProxy(() => origin.port);
  closers.push(() => proxy.close());
  // b reads everything but the id from a config file, its token from a tokenFile.
  writeFileSync(path.join(dir, 'token'), `${TOKEN}\n`);
  writeFileSync(
    path.join(dir, 'node-b.yaml'),
    `id: wrong\nregion: r-b\ncoordinator: "${address}"\ntokenFile: token\n` +
      'tunnelListen: 127.0.0.1:0\nhttpListen: 127.0.0.1:0\ndebugHeaders: true\n' +
      'entryAcceptorNice: 0\n',
  );
  const common = ['--coordinator', address, '--tunnel-listen', '127.0.0.1:0'];
  const http = ['--http-listen', '127.0.0.1:0', '--debug-headers', '--log-level', 'warn'];
  const started = await Promise.all([
    startNode(['--id', 'a', '--region', 'r-a', ...common, ...http, '--egress-proxy', proxy.url]),
    startNode(['--config', path.join(dir, 'node-b.yaml'), '--id', 'b', '--log-level', 'warn']),
    // c starts as docs/operations.md says, with the old generation's floor.
    startNode(
      [
        ...['--id', 'c', '--region', 'r-c', ...common, ...http, '--close-grace-ms', '3000'],
        ...['--entry-acceptor-nice', '4'],
      ],
      [HEAP_FLOOR_FLAG],
    ),
  ]);
  for (const p of started) procs.set(p.ready.id, p);
}, 20_000);

afterAll(async () => {
  for (const c of children.reverse()) {
    if (c.exitCode !== null || c.signalCode !== null) continue;
    const exited = new Promise((r) => c.once('exit', r));
    c.kill('SIGKILL');
    await exited;
  }
  for (const close of closers) await close();
});

describe('relaymesh node as real processes', () => {
  it('announces ready with the bound ports', () => {
    for (const id of ['a', 'b', 'c']) {
      const r = proc(id).ready;
      expect(r.ready).toBe(true);
      expect(r.tunnelPort).toBeGreaterThan(0);
      expect(r.httpPort).toBeGreaterThan(0);
      expect(r.ports).toEqual({ tunnel: r.tunnelPort, http: r.httpPort });
    }
  });

  it('says which glibc tunable it runs without, and gives it to its acceptor process', (ctx) => {
    if (!onGlibc()) ctx.skip(); // the tunable is glibc's
    const a = proc('a');
    // Started without GLIBC_TUNABLES (ENV): the warning names what to set.
    expect(process.env.GLIBC_TUNABLES ?? '').not.toContain('trim_threshold');
    expect(a.stderr()).toContain(`GLIBC_TUNABLES=${MALLOC_TUNABLE}`);
    // Its acceptor (the default) is its child process, started with the tunable.
    const kids = kidsOf(a.child.pid as number);
    expect(kids.length).toBeGreaterThan(0);
    const envs = kids.map((k) => readFileSync(`/proc/${k}/environ`, 'utf8').split('\0'));
    expect(envs.some((e) => e.includes(`GLIBC_TUNABLES=${MALLOC_TUNABLE}`))).toBe(true);
  });

  it('runs its acceptor process at nice 5, or the nice value its flag or config file gives', () => {
    // The slow lane (on, not eager) has not started: each node's one child is its acceptor.
    const nices = ['a', 'b', 'c'].map((id) => kidsOf(proc(id).child.pid as number).map(niceOf));
    expect(nices).toEqual([[5], [0], [4]]);
    expect(niceOf(proc('a').child.pid as number)).toBe(0);
  });

  it("says when node's command line lacks the old generation's floor", () => {
    expect(proc('a').stderr()).toContain(`"nodeFlag":"${HEAP_FLOOR_FLAG}"`);
    expect(proc('c').stderr()).not.toContain('nodeFlag');
  });

  it('routes a request from a through the mesh along `relaymesh routes --json`', {
    timeout: 40_000,
  }, async () => {
    const opts = { address, token: TOKEN };
    await waitFor(
      async () => (await queryRoutes(opts, { from: 'a' })).routes[0]?.path.length,
      10_000,
      'a route from a',
    );
    // The table can move between a request and the query (a better path as the estimates
    // settle; a run once saw a,b then a,c,b), and a's own table follows the coordinator's a
    // moment later: a request counts when the route was the same 500 ms before it (a has
    // had it that long) and in the CLI's answer after it.
    const seen: string[] = [];
    for (let i = 0; i < 6; i++) {
      const before = (await queryRoutes(opts, { from: 'a' })).routes[0]?.path.join(',');
      await new Promise((r) => setTimeout(r, 500));
      const res = await get(proc('a').ready.httpPort, '/through');
      const cli = await run(['routes', '--coordinator', address, '--from', 'a', '--json']);
      expect(cli.code).toBe(0);
      const route = (JSON.parse(cli.stdout) as { routes: { path: string[] }[] }).routes[0];
      const after = route?.path.join(',');
      seen.push(`${before} ${res.status} ${res.path} ${after}`);
      if (res.status !== 200 || before !== after) continue;
      expect(route?.path.length).toBeGreaterThanOrEqual(2);
      expect(res.body).toBe('origin:/through');
      expect(res.path).toBe(after);
      return;
    }
    throw new Error(`no request with the route steady around it: ${seen.join('; ')}`);
  });

  it('`relaymesh nearest --json` ranks every entry; unreachable ones last with an error', async () => {
    const r = await run(['nearest', '--coordinator', address, '--json']);
    expect(r.code).toBe(0);
    const { entries } = JSON.parse(r.stdout) as {
      entries: { id: string; http: string; rttMs: number | null }[];
    };
    expect(entries.map((e) => e.id).sort()).toEqual(['a', 'b', 'c']);
    for (const e of entries) {
      expect(e.http).toBe(`http://127.0.0.1:${proc(e.id).ready.httpPort}`);
      expect(typeof e.rttMs).toBe('number');
    }
    const rtts = entries.map((e) => e.rttMs as number);
    expect(rtts).toEqual([...rtts].sort((x, y) => x - y));

    // Through a proxy that refuses c's entry: c is listed last, unreachable.
    const proxy = await startBlockingProxy(() => proc('c').ready.httpPort);
    closers.push(() => proxy.close());
    const via = await run([
      'nearest',
      '--coordinator',
      address,
      '--json',
      '--egress-proxy',
      proxy.url,
    ]);
    expect(via.code).toBe(0);
    const last = (JSON.parse(via.stdout) as { entries: Record<string, unknown>[] }).entries.at(-1);
    expect(last).toMatchObject({ id: 'c', rttMs: null });
    expect(typeof last?.error).toBe('string');
  });

  it('SIGTERM: the node exits 0 within its grace and the coordinator marks it down', async () => {
    const c = proc('c').child;
    const started = Date.now();
    const exited = new Promise<number | null>((r) => c.once('exit', (code) => r(code)));
    c.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(Date.now() - started).toBeLessThan(3000 + 1000);
    const report = await queryNodes({ address, token: TOKEN });
    expect(report.nodes.find((n) => n.id === 'c')?.status).toBe('down');
  });

  it('a request in flight holds SIGTERM for the grace; a second signal exits at once', async () => {
    const b = proc('b').child;
    await waitFor(() => b.exitCode === null && proc('b').ready.httpPort, 1000, 'b up');
    const hanging = get(proc('b').ready.httpPort, '/hang').catch((e: Error) => e);
    await new Promise((r) => setTimeout(r, 200));
    const exited = new Promise<number | null>((r) => b.once('exit', (code) => r(code)));
    b.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 500));
    expect(b.exitCode).toBeNull(); // still draining: the grace is 10 s
    const started = Date.now();
    b.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(Date.now() - started).toBeLessThan(2000);
    await hanging;
  });

  it('bad flags and config exit 2 with a message naming the field', async () => {
    const base = ['node', '--id', 'x', '--region', 'r', '--coordinator', address];
    const bad = await run([...base, '--tunnel-listen', 'nowhere']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--tunnel-listen');

    const noId = await run(['node', '--region', 'r', '--coordinator', address]);
    expect(noId.code).toBe(2);
    expect(noId.stderr).toContain('--id');

    const unknown = await run([...base, '--tunnel-listen', '127.0.0.1:0', '--bogus']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('--bogus');

    const noToken = await run([...base, '--tunnel-listen', '127.0.0.1:0'], {
      ...process.env,
      RELAYMESH_TOKEN: '',
    });
    expect(noToken.code).toBe(2);
    expect(noToken.stderr).toContain('token');

    const listen = ['--tunnel-listen', '127.0.0.1:0', '--http-listen', '127.0.0.1:0'];
    for (const nice of ['20', '-1', 'low', ''] as const) {
      const badNice = await run([...base, ...listen, '--entry-acceptor-nice', nice]);
      expect(badNice.code).toBe(2);
      expect(badNice.stderr).toContain('--entry-acceptor-nice');
    }

    writeFileSync(path.join(dir, 'typo.yaml'), 'id: x\nhttplisten: 127.0.0.1:0\n');
    const typo = await run(['node', '--config', path.join(dir, 'typo.yaml')]);
    expect(typo.code).toBe(2);
    expect(typo.stderr).toContain('httplisten');
  });
});
