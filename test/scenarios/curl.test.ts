import { spawn } from 'node:child_process';
import { pipeline } from 'node:stream/promises';
import {
  generatedRange,
  generatedSha256,
  loadWorld,
  startWorld,
  type WorldHandle,
} from '@relaymesh/world';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { alive, routePath, waitForRoutes } from './helpers.ts';
import { LINE4, type ScenarioMesh, startScenarioMesh, waitForPath } from './scenario-mesh.ts';

// Issue 5, curl as a real client of the entry a-1 in the line4 world (entry a-1, relay b-1,
// exit c-1, origins behind c-1; fast links so 1 GiB legs take seconds). curl talks to the
// entry directly on loopback (the client sits next to its entry); the mesh's own hops go
// through the world's links.
const GiB = 1024 * 1024 * 1024;
let handle: WorldHandle | undefined;
let mesh: ScenarioMesh | undefined;
let entryPort = 0;
let expectedGiB: Promise<string> = Promise.resolve('');
const pids: number[] = [];

beforeAll(async () => {
  handle = await startWorld(loadWorld(LINE4), { fileSizeBytes: GiB });
  mesh = await startScenarioMesh(handle, handle.clusterOrigins());
  pids.push(...handle.pids());
  entryPort = mesh.node('a-1').httpPort;
  const pairs = ['files', 'echo'].map((origin) => ({ from: 'a-1', origin }));
  await waitForRoutes(mesh.coordinatorAddress, pairs, 30_000);
  // The first routes come from the first samples; the world makes a-1 > b-1 > c-1 clearly best.
  for (const [origin, host] of [
    ['echo', 'echo.d.example'],
    ['files', 'files.d.example'],
  ] as const) {
    await waitForPath(
      mesh.coordinatorAddress,
      mesh.node('a-1'),
      origin,
      host,
      ['a-1', 'b-1', 'c-1'],
      30_000,
    );
  }
  // Hashing 1 GiB of generated content takes a few seconds: start it now.
  expectedGiB = generatedSha256(handle.originAddress('files').contentSeed, GiB);
}, 90_000);

afterAll(async () => {
  await handle?.close();
  handle = undefined;
  expect(alive(pids)).toEqual([]);
}, 30_000);

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `command args` (no shell unless asked), feeding `stdin` when given; bounded by `timeoutMs`. */
function run(
  command: string,
  args: string[],
  timeoutMs: number,
  stdin?: NodeJS.ReadableStream,
): Promise<Run> {
  const child = spawn(command, args, { stdio: [stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d: Buffer) => {
    stdout += d.toString('latin1');
  });
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  if (stdin && child.stdin) pipeline(stdin, child.stdin).catch(() => {});
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  return new Promise((resolve) => {
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Splits `curl -i` output into its header blocks and the final body. */
function splitResponses(out: string): { heads: string[]; body: string } {
  const heads: string[] = [];
  let rest = out;
  while (rest.startsWith('HTTP/')) {
    const end = rest.indexOf('\r\n\r\n');
    if (end < 0) break;
    heads.push(rest.slice(0, end));
    rest = rest.slice(end + 4);
  }
  return { heads, body: rest };
}

function header(head: string, name: string): string | undefined {
  const line = head.split('\r\n').find((l) => l.toLowerCase().startsWith(`${name}:`));
  return line?.slice(name.length + 1).trim();
}

const CURL = ['-sS', '--max-time', '20'];
// The 1 GiB legs take 18-21 s on an idle 2-core machine (50-60 MB/s through three nodes and
// three emulated links); the bounds leave room for a machine shared with other work.

describe('curl through the mesh (a-1 > b-1 > c-1)', () => {
  it('reverse proxy: Host header names the origin; the path is the reported route', async () => {
    const r = await run(
      'curl',
      [...CURL, '-i', '-H', 'Host: echo.d.example', `http://127.0.0.1:${entryPort}/rev?x=1`],
      25_000,
    );
    expect(r.code, r.stderr).toBe(0);
    const { heads, body } = splitResponses(r.stdout);
    expect(heads[0]).toMatch(/^HTTP\/1\.1 200/);
    const reported = await routePath(mesh?.coordinatorAddress ?? '', 'a-1', 'echo');
    expect(header(heads[0] ?? '', 'x-relaymesh-path')?.split(',')).toEqual(reported);
    expect(reported).toEqual(['a-1', 'b-1', 'c-1']);
    const echoed = JSON.parse(body) as {
      method: string;
      url: string;
      headers: Record<string, string>;
    };
    expect(echoed).toMatchObject({ method: 'GET', url: '/rev?x=1' });
    expect(echoed.headers.host).toBe('echo.d.example');
  });

  it('forward proxy (-x): absolute-form request to a declared host', async () => {
    const r = await run(
      'curl',
      [...CURL, '-i', '-x', `http://127.0.0.1:${entryPort}`, 'http://echo.d.example/fwd'],
      25_000,
    );
    expect(r.code, r.stderr).toBe(0);
    const { heads, body } = splitResponses(r.stdout);
    expect(heads[0]).toMatch(/^HTTP\/1\.1 200/);
    expect(header(heads[0] ?? '', 'x-relaymesh-path')).toBe('a-1,b-1,c-1');
    expect(JSON.parse(body)).toMatchObject({ method: 'GET', url: '/fwd' });
  });

  it('CONNECT (-p -x): a tunnel to the declared host, HTTP inside it', async () => {
    const r = await run(
      'curl',
      [...CURL, '-i', '-p', '-x', `http://127.0.0.1:${entryPort}`, 'http://echo.d.example/tun'],
      25_000,
    );
    expect(r.code, r.stderr).toBe(0);
    const { heads, body } = splitResponses(r.stdout);
    expect(heads).toHaveLength(2);
    expect(heads[0]).toMatch(/^HTTP\/1\.1 200/); // the CONNECT answer
    expect(heads[1]).toMatch(/^HTTP\/1\.1 200/); // the origin's own answer, end to end
    expect(JSON.parse(body)).toMatchObject({ method: 'GET', url: '/tun' });
  });

  it('CONNECT to an undeclared host is refused', async () => {
    const r = await run(
      'curl',
      [...CURL, '-i', '-p', '-x', `http://127.0.0.1:${entryPort}`, 'http://not-declared.example/'],
      25_000,
    );
    expect(r.code).not.toBe(0);
    expect(r.stdout).toMatch(/^HTTP\/1\.1 421/);
  });

  it('1 GiB download: sha256 equals the generated file', { timeout: 180_000 }, async () => {
    const started = performance.now();
    const r = await run(
      'sh',
      [
        '-c',
        `curl -sS -f --max-time 150 -H 'Host: files.d.example' http://127.0.0.1:${entryPort}/big | sha256sum`,
      ],
      160_000,
    );
    const secs = (performance.now() - started) / 1000;
    console.log(
      `curl 1 GiB download: ${secs.toFixed(1)} s (${(GiB / secs / 1e6).toFixed(0)} MB/s)`,
    );
    expect(r.stderr).toBe('');
    expect(r.stdout.split(' ')[0]).toBe(await expectedGiB);
  });

  it('1 GiB upload (chunked PUT from stdin) echoed back by the origin: sha256 equal', {
    timeout: 90_000,
  }, async () => {
    const seed = handle?.originAddress('files').contentSeed ?? 0;
    const started = performance.now();
    const r = await run(
      'sh',
      [
        '-c',
        `curl -sS -f --max-time 150 -T - -H 'Host: echo.d.example' http://127.0.0.1:${entryPort}/up | sha256sum`,
      ],
      160_000,
      generatedRange(seed, 0, GiB),
    );
    const secs = (performance.now() - started) / 1000;
    console.log(
      `curl 1 GiB upload + echo: ${secs.toFixed(1)} s (${(GiB / secs / 1e6).toFixed(0)} MB/s each way)`,
    );
    expect(r.stderr).toBe('');
    expect(r.stdout.split(' ')[0]).toBe(await expectedGiB);
  });
});
