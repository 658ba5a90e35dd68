import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CoordinatorClient } from '../../src/control/index.ts';
import { FixedMeasurements, waitFor } from './helpers.ts';

// These tests run the built CLI as real processes: `pnpm exec tsc -b` first.
const BIN = fileURLToPath(new URL('../../bin/relaymesh.js', import.meta.url));
const DIST = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));
const TOKEN = 'cli-test-token-0123456789abcdef';

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, ...env } });
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

let coordinator: ChildProcess | undefined;
let address = '';
const clients: CoordinatorClient[] = [];

beforeAll(async () => {
  if (!existsSync(DIST)) throw new Error('CLI not built: run `pnpm exec tsc -b` first');
  const dir = mkdtempSync(path.join(tmpdir(), 'relaymesh-cli-'));
  const cfg = path.join(dir, 'cluster.yaml');
  writeFileSync(
    cfg,
    'origins:\n  - name: tokyo-files\n    hosts: [files.example.test]\n    upstreams: ["http://127.0.0.1:9"]\n',
  );
  const child = spawn(
    process.execPath,
    [
      BIN,
      'coordinator',
      '--config',
      cfg,
      '--grpc-listen',
      '127.0.0.1:0',
      '--warmup-ms',
      '0',
      '--report-interval-ms',
      '200',
      '--recompute-interval-ms',
      '100',
    ],
    { env: { ...process.env, RELAYMESH_TOKEN: TOKEN }, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  coordinator = child;
  let out = '';
  child.stdout!.on('data', (d) => {
    out += d;
  });
  address = await waitFor(
    () => /"address":"([^"]+)"/.exec(out)?.[1],
    10_000,
    'coordinator to listen',
  );
  // Two real nodes: bj-1 reaches tokyo-files badly, tk-1 well.
  const nodes = [
    { id: 'bj-1', region: 'cn-north-1', peer: 'tk-1', leg: 176, http: 'http://127.0.0.1:8081' },
    { id: 'tk-1', region: 'ap-northeast-1', peer: 'bj-1', leg: 2.1, http: undefined },
  ];
  for (const n of nodes) {
    const m = new FixedMeasurements();
    m.setPeer(n.peer, 84.2);
    m.originList = [
      { origin: 'tokyo-files', upstream: 'http://127.0.0.1:9', rttMs: n.leg, reachable: true },
    ];
    const c = new CoordinatorClient({
      address,
      token: TOKEN,
      node: {
        id: n.id,
        region: n.region,
        advertise: `ws://127.0.0.1:7000/${n.id}`,
        version: 'test',
        ...(n.http === undefined ? {} : { httpAdvertise: n.http }),
      },
      measurements: m,
    });
    clients.push(c);
    c.start();
  }
  await waitFor(() => clients[0]!.route('tokyo-files')?.path.length === 2, 10_000, 'routes');
}, 30_000);

afterAll(async () => {
  for (const c of clients) c.destroy();
  if (coordinator && coordinator.exitCode === null) {
    const exited = new Promise((r) => coordinator!.once('exit', r));
    coordinator.kill('SIGTERM');
    await exited;
  }
});

describe('relaymesh routes / nodes as real processes', () => {
  it('routes --json prints exactly the documented shape', async () => {
    const r = await run([
      'routes',
      '--coordinator',
      address,
      '--token',
      TOKEN,
      '--from',
      'bj-1',
      '--json',
    ]);
    expect(r.code).toBe(0);
    const body = JSON.parse(r.stdout);
    expect(body).toEqual({
      routes: [
        {
          from: 'bj-1',
          origin: 'tokyo-files',
          path: ['bj-1', 'tk-1'],
          rttMs: 86.3,
          alternates: [{ path: ['bj-1'], rttMs: 176 }],
        },
      ],
    });
  });

  it('routes without filters lists every entry; the table is readable', async () => {
    const json = await run(['routes', '--coordinator', address, '--json'], {
      RELAYMESH_TOKEN: TOKEN,
    });
    expect(JSON.parse(json.stdout).routes.map((r: { from: string }) => r.from)).toEqual([
      'bj-1',
      'tk-1',
    ]);
    const table = await run([
      'routes',
      '--coordinator',
      address,
      '--token',
      TOKEN,
      '--origin',
      'tokyo-files',
    ]);
    expect(table.code).toBe(0);
    expect(table.stdout.split('\n')[0]).toMatch(/^FROM\s+ORIGIN\s+RTT_MS\s+PATH\s+ALTERNATES$/);
    expect(table.stdout).toContain('bj-1 > tk-1');
  });

  it('nodes --json lists nodes, links and origin legs', async () => {
    const r = await run(['nodes', '--coordinator', address, '--token', TOKEN, '--json']);
    expect(r.code).toBe(0);
    const body = JSON.parse(r.stdout);
    expect(body.nodes).toEqual([
      {
        id: 'bj-1',
        region: 'cn-north-1',
        status: 'up',
        advertise: 'ws://127.0.0.1:7000/bj-1',
        httpAdvertise: 'http://127.0.0.1:8081',
      },
      { id: 'tk-1', region: 'ap-northeast-1', status: 'up', advertise: 'ws://127.0.0.1:7000/tk-1' },
    ]);
    expect(body.links).toEqual([
      { from: 'bj-1', to: 'tk-1', rttMs: 84.2 },
      { from: 'tk-1', to: 'bj-1', rttMs: 84.2 },
    ]);
    expect(body.origins).toEqual([
      { node: 'bj-1', origin: 'tokyo-files', rttMs: 176 },
      { node: 'tk-1', origin: 'tokyo-files', rttMs: 2.1 },
    ]);
    expect(Object.keys(body)).toEqual(['nodes', 'links', 'origins']);
    // Human output: node table, then the RTT grid (row = from, column = to).
    const human = await run(['nodes', '--coordinator', address, '--token', TOKEN]);
    expect(human.code).toBe(0);
    const lines = human.stdout.split('\n');
    expect(lines[0]).toMatch(/^ID\s+REGION\s+STATUS\s+ADVERTISE\s+HTTP$/);
    expect(lines).toContain('FROM \\ TO  bj-1  tk-1');
    expect(lines).toContain('bj-1       .     84.2');
  });

  it('unknown origin or node: a clear message and a non-zero exit', async () => {
    const o = await run([
      'routes',
      '--coordinator',
      address,
      '--token',
      TOKEN,
      '--origin',
      'nope',
      '--json',
    ]);
    expect(o.code).toBe(3);
    expect(o.stdout).toBe('');
    expect(o.stderr).toContain('unknown origin "nope"');
    const n = await run(['routes', '--coordinator', address, '--token', TOKEN, '--from', 'ghost']);
    expect(n.code).toBe(3);
    expect(n.stderr).toContain('unknown node "ghost"');
  });

  it('a wrong token exits 4 with nothing on stdout', async () => {
    const r = await run([
      'nodes',
      '--coordinator',
      address,
      '--token',
      'wrong-token-wrong-token',
      '--json',
    ]);
    expect(r.code).toBe(4);
    expect(r.stdout).toBe('');
  });

  it('an invalid cluster config fails at start naming the field', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'relaymesh-cli-'));
    const cfg = path.join(dir, 'bad.yaml');
    writeFileSync(
      cfg,
      `token: ${TOKEN}\norigins:\n  - {name: a, hosts: [a.test], upstreams: ["http://x:1"]}\n  - {name: b, hosts: [b.test], upstreams: ["ftp://x"]}\n`,
    );
    const r = await run(['coordinator', '--config', cfg, '--grpc-listen', '127.0.0.1:0']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(
      'origins[1].upstreams[0]: "ftp://x" is not an http:// or tcp:// URL',
    );
  });

  it('a bad --settle-rounds fails at start naming the flag', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'relaymesh-cli-'));
    const cfg = path.join(dir, 'ok.yaml');
    writeFileSync(cfg, `token: ${TOKEN}\norigins: []\n`);
    const args = ['coordinator', '--config', cfg, '--grpc-listen', '127.0.0.1:0'];
    const r = await run([...args, '--settle-rounds', '-1']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--settle-rounds "-1" is not a non-negative integer');
  });
});
