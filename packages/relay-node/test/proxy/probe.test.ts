import { createDialer, WireCode } from '@relaymesh/shared';
import { FakeClock } from '@relaymesh/shared/testing';
import { afterEach, describe, expect, it } from 'vitest';
import type { PeerInfo } from '../../src/control/snapshots.ts';
import { PeerManager } from '../../src/node/peer-manager.ts';
import { ExitHandler } from '../../src/proxy/exit/exit-handler.ts';
import {
  DATA_PLANE_VERSION,
  decodeOpenHeader,
  encodeOpenHeader,
  encodePrefixed,
  MAX_OPEN_HEADER_BYTES,
  MAX_PROBE_BYTES,
  type OpenHeader,
  probeOpenHeader,
  readPrefixed,
} from '../../src/proxy/open-header.ts';
import { runProbe } from '../../src/proxy/probe.ts';
import { StreamServer } from '../../src/proxy/relay/stream-server.ts';
import { duplexPair } from '../../src/proxy/splice.ts';
import type { HopStream } from '../../src/proxy/types.ts';
import { OriginTable } from '../../src/routing/origin-catalog.ts';
import { TunnelDialer } from '../../src/tunnel/dialer.ts';
import { TunnelListener } from '../../src/tunnel/listener.ts';
import { TOKEN, waitFor } from '../node/helpers.ts';

// Capacity probes over a real tunnel on loopback: node "a" probes node "b", whose stream
// server answers (the same wiring as a relay node's data plane).

interface End {
  id: string;
  listener: TunnelListener;
  peers: PeerManager;
  server: StreamServer;
  exit: ExitHandler;
}

const ends: End[] = [];

async function end(id: string): Promise<End> {
  const listener = new TunnelListener({ nodeId: id, token: TOKEN });
  await listener.listen();
  const exit = new ExitHandler({ catalog: new OriginTable(), dialer: createDialer() });
  let server: StreamServer | undefined;
  const peers = new PeerManager({
    nodeId: id,
    listener,
    dialer: new TunnelDialer({ nodeId: id, token: TOKEN }),
    onStream: (s) => server?.handle(s as HopStream),
    backoff: { initialMs: 20, maxMs: 200 },
  });
  server = new StreamServer({ nodeId: id, opener: peers, exit });
  const e = { id, listener, peers, server, exit };
  ends.push(e);
  return e;
}

const info = (e: End): PeerInfo => ({
  id: e.id,
  region: 'r',
  advertise: e.listener.url,
  httpAdvertise: '',
  status: 'up',
});

async function pair(): Promise<[End, End]> {
  const a = await end('a');
  const b = await end('b');
  a.peers.setPeers([info(a), info(b)]);
  b.peers.setPeers([info(a), info(b)]);
  await waitFor(
    () => a.peers.connectedPeers.includes('b') && b.peers.connectedPeers.includes('a'),
    5000,
    'tunnel a-b',
  );
  return [a, b];
}

afterEach(async () => {
  for (const e of ends.splice(0)) {
    e.server.destroy();
    e.peers.destroy();
    e.listener.destroy();
    await e.exit.destroy();
  }
});

/** Writes `header` raw on a new stream to b; resolves with b's reset code (or 'ended'). */
function refused(a: End, header: Buffer): Promise<number | 'ended'> {
  const s = a.peers.open('b') as HopStream;
  s.on('error', () => {});
  s.resume();
  s.end(header);
  return new Promise((resolve) => {
    s.once('end', () => resolve('ended'));
    s.once('close', () => resolve(s.resetCode ?? 'ended'));
  });
}

describe('capacity probe (kind probe)', () => {
  it('b answers with the bytes asked for; a gets a positive rate over the session', async () => {
    const [a] = await pair();
    const session = a.peers.sessionFor('b')!;
    const before = session.bytesReceived;
    const r = await runProbe({
      stream: a.peers.open('b') as HopStream,
      nodeId: 'a',
      id: 'p1',
      bytes: 256 * 1024,
      sessionBytes: () => session.bytesReceived,
    });
    expect(r.complete).toBe(true);
    expect(r.bps).toBeGreaterThan(0);
    expect(r.ms).toBeGreaterThan(0);
    // Every probe byte crossed the session (plus the response head).
    expect(session.bytesReceived - before).toBeGreaterThanOrEqual(256 * 1024);
    expect(r.bytes).toBeLessThanOrEqual(session.bytesReceived - before);
    // A second, 1-byte probe: the smallest allowed also completes.
    const small = await runProbe({
      stream: a.peers.open('b') as HopStream,
      nodeId: 'a',
      id: 'p2',
      bytes: 1,
      sessionBytes: () => session.bytesReceived,
    });
    expect(small.complete).toBe(true);
    expect(small.bps).toBeGreaterThan(0);
    await waitFor(() => a.server.liveStreams === 0 && ends[1]!.server.liveStreams === 0, 2000);
  });

  it.each([
    ['0 bytes', { bytes: 0 }],
    ['too many bytes', { bytes: MAX_PROBE_BYTES + 1 }],
    ['a port', { port: 80 }],
    ['hops past the peer', { hops: ['c'] }],
    ['an origin', { origin: 'files' }],
    ['a request head', { head: { method: 'GET', target: '/', headers: [], bodyLength: 0 } }],
    ['a two-node path', { path: ['x', 'a'] }],
  ])('b resets a probe with %s (BAD_OPEN_HEADER) and stays up', async (_name, change) => {
    const [a] = await pair();
    const wire = { ...probeOpenHeader('bad', 'a', 1024), ...change } as OpenHeader;
    expect(await refused(a, encodeOpenHeader(wire))).toBe(WireCode.BAD_OPEN_HEADER);
    // The tunnel and b's server are still fine: a good probe completes.
    const session = a.peers.sessionFor('b')!;
    const r = await runProbe({
      stream: a.peers.open('b') as HopStream,
      nodeId: 'a',
      id: 'ok',
      sessionBytes: () => session.bytesReceived,
    });
    expect(r.complete).toBe(true);
  });

  it('an http header with a bytes field is refused too', () => {
    const h: OpenHeader = {
      v: DATA_PLANE_VERSION,
      kind: 'tcp',
      origin: 'x',
      hops: [],
      path: ['a'],
      id: 'i',
      bytes: 5,
    };
    expect(() => decodeOpenHeader(encodeOpenHeader(h).subarray(4))).toThrow(
      expect.objectContaining({ code: 'ERR_PROXY_BAD_OPEN_HEADER' }),
    );
  });

  it('round-trips the probe header with an empty origin on the wire', () => {
    const h = probeOpenHeader('id1', 'a', 65536);
    const bytes = encodeOpenHeader(h);
    // version, kind 4 (probe), flags 4 (bytes), 0 hops, 1 path entry, origin of 0 bytes
    expect([...bytes.subarray(4, 10)]).toEqual([DATA_PLANE_VERSION, 4, 4, 0, 1, 0]);
    expect(decodeOpenHeader(bytes.subarray(4))).toEqual(h);
  });

  it('a probe not done within the timeout yields session bytes / elapsed and is reset', async () => {
    const clock = new FakeClock();
    const [a, b] = duplexPair();
    let sessionBytes = 0;
    const probe = runProbe({
      stream: a,
      nodeId: 'a',
      id: 't',
      bytes: 65536,
      timeoutMs: 4000,
      sessionBytes: () => sessionBytes,
      clock,
    });
    const header = decodeOpenHeader(await readPrefixed(b, MAX_OPEN_HEADER_BYTES, 2000));
    expect(header).toMatchObject({ kind: 'probe', bytes: 65536, hops: [], path: ['a'] });
    b.on('error', () => {});
    b.write(encodePrefixed({ v: DATA_PLANE_VERSION, status: 200, headers: [] }));
    b.write(Buffer.alloc(1000)); // then nothing more: the link is stuck
    sessionBytes = 10_000; // the probe's bytes and other streams' on the same session
    // Past the head, runProbe reads the body in flowing mode.
    await waitFor(() => a.readableFlowing === true, 2000, 'the probe reading its bytes');
    clock.advance(4000);
    expect(await probe).toEqual({ bps: 2500, complete: false, bytes: 10_000, ms: 4000 });
    await waitFor(() => b.destroyed, 2000, 'the probe stream reset');
  });

  it('a probe whose head does not come within the timeout is a sample too (a queue)', async () => {
    const clock = new FakeClock();
    const [a, b] = duplexPair();
    b.on('error', () => {});
    let sessionBytes = 0;
    const probe = runProbe({
      stream: a,
      nodeId: 'a',
      id: 'q',
      timeoutMs: 4000,
      sessionBytes: () => sessionBytes,
      clock,
    });
    await readPrefixed(b, MAX_OPEN_HEADER_BYTES, 2000);
    sessionBytes = 1_000_000; // other streams' bytes ahead of the probe on the link
    clock.advance(4000);
    expect(await probe).toEqual({ bps: 250_000, complete: false, bytes: 1_000_000, ms: 4000 });
    await waitFor(() => b.destroyed, 2000, 'the probe stream reset');
  });
});
