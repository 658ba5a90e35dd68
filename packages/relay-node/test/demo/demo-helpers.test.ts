import { createHash } from 'node:crypto';
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { PassThrough } from 'node:stream';
import { DirectDialer, isRelayError } from '@relaymesh/shared';
import { afterEach, describe, expect, it } from 'vitest';
import { type DemoSummary, describePath, renderSummary, summaryJson } from '../../src/demo/demo.ts';
import { download } from '../../src/demo/download.ts';
import { formatBytes, formatDuration, formatRate, streamOutput } from '../../src/demo/progress.ts';

const servers: http.Server[] = [];
afterEach(async () => {
  await Promise.all(
    servers.splice(0).map((s) => {
      s.closeAllConnections();
      return new Promise((r) => s.close(r));
    }),
  );
});

async function serve(handler: http.RequestListener): Promise<number> {
  const s = http.createServer(handler);
  servers.push(s);
  s.listen(0, '127.0.0.1');
  await once(s, 'listening');
  return (s.address() as AddressInfo).port;
}

describe('demo formatting', () => {
  it('formats bytes, rates and durations', () => {
    expect(formatBytes(512)).toBe('512 B');
    expect(formatBytes(64 * 1024 * 1024)).toBe('64.0 MiB');
    expect(formatRate(30_500)).toBe('30.5 KB/s (0.24 Mbit/s)');
    expect(formatRate(12_100_000)).toBe('12.1 MB/s (96.8 Mbit/s)');
    expect(formatDuration(5_000)).toBe('5s');
    expect(formatDuration(200_000)).toBe('3m 20s');
    expect(formatDuration(2 * 3600_000 + 5 * 60_000)).toBe('2h 05m');
    expect(formatDuration(Number.POSITIVE_INFINITY)).toBe('--');
    expect(describePath(['bj-1'])).toBe('bj-1 (the entry is also the exit)');
    expect(describePath(['bj-1', 'hk-1'])).toBe('bj-1 > hk-1');
  });

  it('plain output writes lines; quiet output writes nothing', () => {
    const sink = new PassThrough();
    let text = '';
    sink.on('data', (d: Buffer) => {
      text += d.toString();
    });
    const out = streamOutput(sink, { tty: false });
    out.line('hello');
    const bar = out.progress('mesh', 100);
    bar.update(50); // plain lines come at most every 2 s: none yet
    bar.done('mesh: done');
    expect(text).toBe('hello\n  mesh: done\n');
    const quiet = streamOutput(sink, { tty: false, quiet: true });
    quiet.line('x');
    quiet.progress('y', 1).done('z');
    expect(text).toBe('hello\n  mesh: done\n');
  });

  it('summaryJson starts with the documented keys', () => {
    const d: DemoSummary = {
      direct: { bytesPerSec: 30_000, bytes: 1, seconds: 1, etaSeconds: 2 },
      mesh: { bytesPerSec: 12e6, path: ['bj-1', 'tokyo-1'], bytes: 1, seconds: 1, sha256: 'x' },
      speedup: 400,
      reroute: {
        path: ['bj-1', 'hk-1'],
        afterMs: 9000,
        requestPath: ['bj-1', 'hk-1'],
        runningDownload: { bytes: 1, bytesPerSec: 1, path: ['bj-1'], intact: true },
        newDownload: { bytes: 1, bytesPerSec: 1, path: ['bj-1', 'hk-1'] },
      },
      fileBytes: 1,
      totalSeconds: 30,
    };
    expect(Object.keys(JSON.parse(summaryJson(d))).slice(0, 3)).toEqual([
      'direct',
      'mesh',
      'speedup',
    ]);
    expect(renderSummary(d)).toContain('400x');
  });
});

describe('demo download', () => {
  const dialer = new DirectDialer();

  it('reads the whole body, hashes it and splits x-relaymesh-path', async () => {
    const body = Buffer.alloc(300_000, 7);
    const port = await serve((req, res) => {
      res.writeHead(200, { 'x-relaymesh-path': 'bj-1,hk-1', 'x-host': req.headers.host ?? '' });
      res.end(body);
    });
    const r = await download({ dialer, port, hostHeader: 'files.example' });
    expect(r).toMatchObject({
      status: 200,
      bytes: body.length,
      complete: true,
      path: ['bj-1', 'hk-1'],
    });
    expect(r.sha256).toBe(createHash('sha256').update(body).digest('hex'));
  });

  it('stops after maxMs with complete: false', async () => {
    const port = await serve((_req, res) => {
      res.writeHead(200);
      res.write(Buffer.alloc(1000));
      // never ends
    });
    const r = await download({ dialer, port, hostHeader: 'h', maxMs: 200 });
    expect(r.complete).toBe(false);
    expect(r.bytes).toBe(1000);
  });

  it('a body cut short rejects with ERR_DEMO_FAILED', async () => {
    const port = await serve((req, res) => {
      res.writeHead(200, { 'content-length': '10000' });
      res.write(Buffer.alloc(100), () => req.socket.destroy());
    });
    const err = await download({ dialer, port, hostHeader: 'h', timeoutMs: 5000 }).catch((e) => e);
    expect(isRelayError(err) && err.code).toBe('ERR_DEMO_FAILED');
  });
});
