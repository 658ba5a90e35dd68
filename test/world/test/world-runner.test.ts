import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { HttpConnectDialer } from '@relaymesh/shared';
import { afterEach, describe, expect, it } from 'vitest';
import {
  generatedBytes,
  loadWorld,
  logLineReady,
  parseJsonReadyLine,
  startWorld,
  type WorldHandle,
  WorldProcess,
} from '../src/index.ts';

// These tests spawn the compiled entries in dist/: run `pnpm exec tsc -b` first.
let handle: WorldHandle | undefined;
afterEach(async () => {
  await handle?.close();
  handle = undefined;
});

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** GET through the egress proxy of `region`, as a node there would. */
async function getVia(
  w: WorldHandle,
  region: string,
  port: number,
  headers: http.OutgoingHttpHeaders,
): Promise<{ status: number; body: Buffer }> {
  const socket = await w.dialerFor(region, { timeoutMs: 5000 }).dial({
    host: '127.0.0.1',
    port,
  });
  return new Promise((resolve, reject) => {
    const req = http.request({ createConnection: () => socket, headers, path: '/file' }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (d: Buffer) => parts.push(d));
      res.on('end', () => {
        socket.destroy();
        resolve({ status: res.statusCode ?? 0, body: Buffer.concat(parts) });
      });
    });
    req.on('error', reject);
    req.end();
  });
}

describe('world runner', () => {
  it('starts the seed world as processes, carries traffic over its links, and stops clean', async () => {
    const world = loadWorld('seed');
    const t0 = performance.now();
    handle = await startWorld(world, { fileSizeBytes: 1 << 20 });
    const startMs = performance.now() - t0;
    const pids = handle.pids();
    expect(pids).toHaveLength(world.regions.length + world.origins.length);
    expect(pids.every(alive)).toBe(true);
    expect(startMs).toBeLessThan(10_000);

    const files = handle.originAddress('files');
    const t1 = performance.now();
    const got = await getVia(handle, 'cn-chengdu', files.port, { range: 'bytes=0-999' });
    const elapsed = performance.now() - t1;
    expect(got.status).toBe(206);
    expect(got.body.equals(await generatedBytes(files.contentSeed, 0, 1000))).toBe(true);
    // One RTT to connect plus one for the request over the 176 ms Chengdu-Tokyo link.
    expect(elapsed).toBeGreaterThan(2 * 176 * 0.95);

    const fault = await handle.controlLinks('cn-chengdu', 'ap-northeast-1', { fault: 'blackhole' });
    expect(fault.directions).toBe(4); // both directions, in each end's proxy
    await handle.controlLinks('cn-chengdu', 'ap-northeast-1', { fault: 'heal' });
    const stats = await handle.linkStats();
    const used = stats.find(
      (l) => l.from === 'cn-chengdu' && l.to === 'ap-northeast-1' && l.bytes > 0,
    );
    expect(used?.totalConnections).toBe(1);

    const t2 = performance.now();
    await handle.close();
    expect(performance.now() - t2).toBeLessThan(5000);
    expect(pids.filter(alive)).toEqual([]);
  });

  it('starts aws12 with one shared egress process and routes Bahrain to Calgary over the matrix RTT', async () => {
    const world = loadWorld('aws12');
    const t0 = performance.now();
    handle = await startWorld(world, { egress: 'shared', fileSizeBytes: 64 * 1024 });
    expect(performance.now() - t0).toBeLessThan(10_000);
    const pids = handle.pids();
    expect(pids).toHaveLength(1 + world.origins.length);
    const api = handle.originAddress('yyc-api');
    const t1 = performance.now();
    const got = await getVia(handle, 'me-south-1', api.port, {});
    expect(got.status).toBe(200);
    // Set-up plus one request: two round trips of the 253.8 ms Bahrain-Calgary link.
    expect(performance.now() - t1).toBeGreaterThan(2 * 253.8 * 0.95);
    await handle.close();
    expect(pids.filter(alive)).toEqual([]);
  });

  it('plugs in extra processes by spec and routes to their ports (in-process, shared proxy)', async () => {
    const world = loadWorld('seed');
    handle = await startWorld(world, { inProcess: true, skipOrigins: true, egress: 'shared' });
    expect(handle.pids()).toEqual([]);
    expect(handle.proxies()).toHaveLength(1);
    const fault = await handle.controlLinks('cn-north-1', 'ap-east-1', { fault: 'heal' });
    expect(fault.directions).toBe(2);
    const script = `const s=require('node:net').createServer(c=>c.pipe(c)).listen(0,'127.0.0.1',()=>console.log(JSON.stringify({ready:true,port:s.address().port})));process.stdin.on('end',()=>process.exit(0));process.stdin.resume();`;
    const p = await handle.startProcess({
      name: 'fake-tool',
      region: 'ap-east-1',
      command: process.execPath,
      args: ['-e', script],
    });
    const port = p.ready.ports[0] ?? 0;
    const socket = await new HttpConnectDialer(handle.proxyUrlFor('cn-north-1')).dial({
      host: '127.0.0.1',
      port,
    });
    const t = performance.now();
    socket.write('x');
    await new Promise((r) => socket.once('data', r));
    expect(performance.now() - t).toBeGreaterThan(51 * 0.9);
    socket.destroy();
    await handle.close();
    expect(alive(p.pid)).toBe(false);
  });

  it('keeps each process log in logDir (stdout and stderr, appended)', async () => {
    const logDir = mkdtempSync(path.join(tmpdir(), 'relaymesh-world-logs-'));
    try {
      handle = await startWorld(loadWorld('seed'), {
        inProcess: true,
        skipOrigins: true,
        egress: 'shared',
        logDir,
      });
      const script = `console.error('to stderr');console.log(JSON.stringify({ready:true}));process.stdin.on('end',()=>process.exit(0));process.stdin.resume();`;
      const spec = { name: 'logger', region: 'ap-east-1', command: process.execPath };
      await handle.startProcess({ ...spec, args: ['-e', script], registerPorts: false });
      await handle.close();
      // The file stream flushes after the exit: wait for it (bounded).
      const file = path.join(logDir, 'logger.log');
      let lines: string[] = [];
      for (let i = 0; i < 100 && lines.length < 3; i++) {
        lines = existsSync(file) ? readFileSync(file, 'utf8').split('\n') : [];
        if (lines.length < 3) await new Promise((r) => setTimeout(r, 20));
      }
      expect(lines).toContain('to stderr');
      expect(lines).toContain('{"ready":true}');
    } finally {
      rmSync(logDir, { recursive: true, force: true });
    }
  });

  it('fails clearly and leaves nothing when a process never becomes ready or dies', async () => {
    const hang = WorldProcess.start({
      name: 'hangs',
      region: 'x',
      command: process.execPath,
      args: ['-e', 'console.log("booting"); setInterval(() => {}, 1000)'],
      readyTimeoutMs: 300,
    });
    const hangErr = await hang.catch((e: { code: string; details: { pid: number } }) => e);
    expect(hangErr).toMatchObject({ code: 'ERR_WORLD_PROCESS' });
    await new Promise((r) => setTimeout(r, 100));
    expect(alive((hangErr as { details: { pid: number } }).details.pid)).toBe(false);
    const dies = WorldProcess.start({
      name: 'dies',
      region: 'x',
      command: process.execPath,
      args: ['-e', 'console.error("bad config"); process.exit(3)'],
    });
    const err = await dies.catch((e: { code: string; details: { tail: string[] } }) => e);
    expect(err).toMatchObject({ code: 'ERR_WORLD_PROCESS', details: { tail: ['bad config'] } });
  });
});

describe('ready lines', () => {
  it('takes every listening port a ready line names', () => {
    const line = JSON.stringify({
      ready: true,
      id: 'bj-1',
      tunnelPort: 4001,
      httpPort: 4002,
      forwardPorts: [4003, 4004],
      ports: { tunnel: 4001, http: 4002 },
      controlPort: 4005,
    });
    expect(parseJsonReadyLine(line)?.ports.sort()).toEqual([4001, 4002, 4003, 4004, 4005]);
    expect(parseJsonReadyLine('{"ready":false,"port":1}')).toBeUndefined();
    expect(parseJsonReadyLine('listening on 4001')).toBeUndefined();
    const coord = logLineReady('coordinator listening');
    expect(
      coord('{"level":30,"msg":"coordinator listening","address":"127.0.0.1:7400"}')?.ports,
    ).toEqual([7400]);
    expect(coord('{"level":30,"msg":"other","address":"127.0.0.1:7400"}')).toBeUndefined();
  });
});
