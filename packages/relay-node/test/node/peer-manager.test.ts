import { afterEach, describe, expect, it } from 'vitest';
import type { PeerInfo } from '../../src/control/snapshots.ts';
import { PeerManager } from '../../src/node/peer-manager.ts';
import { TunnelDialer } from '../../src/tunnel/dialer.ts';
import { TunnelListener } from '../../src/tunnel/listener.ts';
import { TOKEN, waitFor } from './helpers.ts';

// Two peer managers over real tunnels on loopback: "a" dials, "b" accepts.
interface End {
  id: string;
  listener: TunnelListener;
  peers: PeerManager;
  url: string;
  streams: string[];
}

const ends: End[] = [];

async function end(id: string, forgetAfterMs: number): Promise<End> {
  const listener = new TunnelListener({ nodeId: id, token: TOKEN });
  await listener.listen();
  const streams: string[] = [];
  const peers = new PeerManager({
    nodeId: id,
    listener,
    dialer: new TunnelDialer({ nodeId: id, token: TOKEN }),
    onStream: (s, peer) => {
      streams.push(peer);
      s.end();
    },
    backoff: { initialMs: 20, maxMs: 200 },
    forgetAfterMs,
  });
  const e = { id, listener, peers, url: listener.url, streams };
  ends.push(e);
  return e;
}

function info(e: End): PeerInfo {
  return { id: e.id, region: 'r', advertise: e.url, httpAdvertise: '', status: 'up' };
}

afterEach(() => {
  for (const e of ends.splice(0)) {
    e.peers.destroy();
    e.listener.destroy();
  }
});

/** Peers a and b, each knowing both; resolves once each side sees the tunnel. */
async function connectedPair(): Promise<[End, End]> {
  const a = await end('a', 10_000);
  const b = await end('b', 10_000);
  a.peers.setPeers([info(a), info(b)]);
  b.peers.setPeers([info(a), info(b)]);
  // Each side sees the tunnel when its own half of the hello is done.
  await waitFor(
    () => b.peers.connectedPeers.includes('a') && a.peers.connectedPeers.includes('b'),
    5000,
    'tunnel a-b on both sides',
  );
  return [a, b];
}

describe('PeerManager', () => {
  it('the lower id dials, the other accepts; streams reach onStream on both sides', async () => {
    const [a, b] = await connectedPair();
    expect(a.listener.tunnels.size).toBe(0);
    expect([...b.listener.tunnels.keys()]).toEqual(['a']);
    a.peers.open('b').end();
    b.peers.open('a').end();
    await waitFor(() => a.streams.length === 1 && b.streams.length === 1, 5000, 'streams');
    expect(a.streams).toEqual(['b']);
    expect(b.streams).toEqual(['a']);
    await waitFor(() => a.peers.view('b').lastRttAt !== undefined, 5000, 'an rtt sample');
    expect(a.peers.view('b')).toMatchObject({ peerNodeId: 'b', up: true });
  });

  it("a peer's GO_AWAY on the tunnel in use emits 'draining' (once per GO_AWAY, that peer only)", async () => {
    const [a, b] = await connectedPair();
    const drainingAtA: string[] = [];
    const drainingAtB: string[] = [];
    a.peers.on('draining', (p: string) => drainingAtA.push(p));
    b.peers.on('draining', (p: string) => drainingAtB.push(p));
    b.peers.sessionFor('a')?.goAway();
    await waitFor(() => drainingAtA.length === 1, 5000, "'draining' at a");
    expect(drainingAtA).toEqual(['b']);
    // The side that sent GO_AWAY does not call its peer draining.
    expect(drainingAtB).toEqual([]);
    expect(a.peers.view('b').up).toBe(false);
  });

  it('open to a peer without a tunnel throws ERR_TUNNEL_DOWN', async () => {
    const a = await end('a', 10_000);
    expect(() => a.peers.open('nobody')).toThrow(
      expect.objectContaining({ code: 'ERR_TUNNEL_DOWN' }),
    );
  });

  it('a peer missing from the membership briefly keeps its tunnel', async () => {
    const a = await end('a', 300);
    const b = await end('b', 300);
    a.peers.setPeers([info(b)]);
    const tunnel = await waitFor(() => b.listener.tunnels.get('a'), 5000, 'tunnel a-b');
    await waitFor(() => a.peers.connectedPeers.includes('b'), 5000, 'tunnel at a');
    a.peers.setPeers([]); // e.g. a coordinator that restarted and has not heard b yet
    await new Promise((r) => setTimeout(r, 100));
    a.peers.setPeers([info(b)]);
    await new Promise((r) => setTimeout(r, 400));
    expect(a.peers.connectedPeers).toEqual(['b']);
    expect(b.listener.tunnels.get('a')).toBe(tunnel);
  });

  it('a peer missing for forgetAfterMs loses its tunnel; a moved peer is redialed at once', async () => {
    const a = await end('a', 150);
    const b = await end('b', 150);
    a.peers.setPeers([info(b)]);
    await waitFor(() => a.peers.connectedPeers.includes('b'), 5000, 'tunnel a-b');
    a.peers.setPeers([]);
    await waitFor(() => a.peers.connectedPeers.length === 0, 3000, 'the tunnel to close');
    expect(a.peers.knownPeers.size).toBe(0);

    // b restarts on another port: a dials the new address.
    const b2 = await end('b', 150);
    a.peers.setPeers([info(b)]);
    await waitFor(() => a.peers.connectedPeers.includes('b'), 5000, 'tunnel to b');
    a.peers.setPeers([info(b2)]);
    await waitFor(() => b2.listener.tunnels.has('a'), 5000, 'tunnel to the moved b');
    await waitFor(() => !b.listener.tunnels.has('a'), 5000, 'the old tunnel to close');
  });
});
