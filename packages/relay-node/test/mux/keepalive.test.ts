import { encodeFrame, Flag, FrameDecoder, FrameType, isRelayError } from '@relaymesh/shared';
import { FakeClock } from '@relaymesh/shared/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { createMemoryPair, Session, StreamTransport } from '../../src/index.ts';
import { streamError, until } from './helpers.ts';

const sessions: Session[] = [];
/**
 * These tests step a fake clock in 5 s units: pin the timers they were written for (the
 * defaults are 0.5 s / 3 s since the failover work; the last test checks those).
 */
const TIMERS = { keepAliveIntervalMs: 5000, deadTimeoutMs: 15_000 };
afterEach(() => {
  for (const s of sessions.splice(0)) s.destroy();
});

function pair(clock: FakeClock): { client: Session; server: Session } {
  const [a, b] = createMemoryPair();
  const config = TIMERS;
  const client = new Session({ transport: new StreamTransport(a), role: 'client', clock, config });
  const server = new Session({ transport: new StreamTransport(b), role: 'server', clock, config });
  sessions.push(client, server);
  return { client, server };
}

/** A session whose peer is silent unless the test writes frames; counts pings it gets. */
function silentPeer(clock: FakeClock, config: Partial<typeof TIMERS> = TIMERS) {
  const [a, b] = createMemoryPair();
  const session = new Session({ transport: new StreamTransport(a), role: 'client', clock, config });
  sessions.push(session);
  const decoder = new FrameDecoder();
  let pings = 0;
  b.on('data', (c: Buffer) => {
    for (const f of decoder.push(c)) {
      if (!(f instanceof Error) && f.type === FrameType.PING && f.flags === Flag.SYN) pings++;
    }
  });
  b.on('error', () => {});
  return {
    session,
    pings: () => pings,
    send: (buf: Buffer) => b.write(buf),
  };
}

describe('keepalive and RTT', () => {
  it('measures RTT at session start and smooths samples per RFC 6298', async () => {
    const clock = new FakeClock();
    const { client } = pair(clock);
    const samples: number[] = [];
    client.on('rtt', (ms: number) => samples.push(ms));
    // The start-up ping is in flight; let 20 ms pass before its answer is processed.
    clock.advance(20);
    await until(() => client.rttStats.samples === 1);
    expect(client.rttStats).toMatchObject({ srttMs: 20, rttvarMs: 10, minMs: 20, lastMs: 20 });
    const rtt = client.ping();
    clock.advance(40);
    expect(await rtt).toBe(40);
    // rttvar = 3/4·10 + 1/4·|20-40| = 12.5; srtt = 7/8·20 + 1/8·40 = 22.5
    expect(client.rttStats).toMatchObject({
      srttMs: 22.5,
      rttvarMs: 12.5,
      minMs: 20,
      lastMs: 40,
      samples: 2,
    });
    expect(samples).toEqual([20, 40]);
  });

  it('pings every keepAliveIntervalMs', async () => {
    const clock = new FakeClock();
    const peer = silentPeer(clock);
    await until(() => peer.pings() === 1);
    clock.advance(5000);
    await until(() => peer.pings() === 2);
    clock.advance(5000);
    await until(() => peer.pings() === 3);
  });

  it('declares a silent peer dead after deadTimeoutMs: ERR_MUX_KEEPALIVE_TIMEOUT', async () => {
    const clock = new FakeClock();
    const peer = silentPeer(clock);
    const errors: Error[] = [];
    peer.session.on('error', (e: Error) => errors.push(e));
    const stream = peer.session.open();
    const streamErr = streamError(stream);
    clock.advance(14_999);
    expect(peer.session.state).toBe('open');
    clock.advance(1);
    expect(peer.session.state).toBe('destroyed');
    expect(errors).toHaveLength(1);
    expect(isRelayError(errors[0], 'ERR_MUX_KEEPALIVE_TIMEOUT')).toBe(true);
    expect(isRelayError(await streamErr, 'ERR_MUX_KEEPALIVE_TIMEOUT')).toBe(true);
  });

  it('any frame from the peer counts as liveness', async () => {
    const clock = new FakeClock();
    const peer = silentPeer(clock);
    clock.advance(12_000);
    peer.send(encodeFrame(FrameType.PING, Flag.SYN, 0, 7));
    await new Promise((r) => setTimeout(r, 20)); // let the frame arrive
    clock.advance(3000); // t=15000: the tick sees the frame
    expect(peer.session.state).toBe('open');
    clock.advance(14_999); // t=29999
    expect(peer.session.state).toBe('open');
    clock.advance(1);
    expect(peer.session.state).toBe('destroyed');
  });

  it('ping() rejects with ERR_MUX_KEEPALIVE_TIMEOUT when unanswered', async () => {
    const clock = new FakeClock();
    const peer = silentPeer(clock);
    peer.session.on('error', () => {});
    const rtt = peer.session.ping();
    clock.advance(10_000);
    await expect(rtt).rejects.toMatchObject({ code: 'ERR_MUX_KEEPALIVE_TIMEOUT' });
  });

  it('ping() on a destroyed session rejects with ERR_MUX_SESSION_CLOSED', async () => {
    const clock = new FakeClock();
    const { client, server } = pair(clock);
    const pending = client.ping();
    client.destroy();
    await expect(pending).rejects.toMatchObject({ code: 'ERR_MUX_SESSION_CLOSED' });
    await expect(client.ping()).rejects.toMatchObject({ code: 'ERR_MUX_SESSION_CLOSED' });
    await Promise.all([client.closed, server.closed]);
    // Every timer of both sessions (keepalive, ping timeouts) was cleared.
    expect(clock.pending).toBe(0);
  });
});

describe('open timeout', () => {
  it('fails a stream the peer never ACKs with ERR_MUX_OPEN_TIMEOUT', async () => {
    const clock = new FakeClock();
    const [a, b] = createMemoryPair();
    const session = new Session({
      transport: new StreamTransport(a),
      role: 'client',
      clock,
      config: { ...TIMERS, openTimeoutMs: 3000 },
    });
    sessions.push(session);
    b.on('error', () => {});
    b.resume();
    const s = session.open();
    const err = streamError(s);
    clock.advance(2999);
    expect(s.destroyed).toBe(false);
    clock.advance(1);
    expect(isRelayError(await err, 'ERR_MUX_OPEN_TIMEOUT')).toBe(true);
    expect(s.resetCode).toBe(4);
    expect(session.state).toBe('open');
  });

  it('an ACKed stream outlives the open timeout', async () => {
    const clock = new FakeClock();
    const { client, server } = pair(clock);
    server.on('stream', (st) => st.on('error', () => {}));
    const s = client.open();
    s.on('error', () => {});
    await until(() => server.streamCount === 1);
    await new Promise((r) => setTimeout(r, 20)); // the ACK travels back
    // Step time so the keepalive pings get answered (real I/O runs between steps).
    for (let t = 0; t < 35_000; t += 5000) {
      clock.advance(5000);
      await new Promise((r) => setTimeout(r, 10));
    }
    expect(client.state).toBe('open');
    expect(s.destroyed).toBe(false);
  });
});

describe('default keepalive timers', () => {
  it('a silent peer is declared dead 3 s after the last tick that saw a frame', () => {
    const clock = new FakeClock();
    const peer = silentPeer(clock, {});
    const errors: Error[] = [];
    peer.session.on('error', (e: Error) => errors.push(e));
    // Ticks every 0.5 s: 2.5 s of silence is not dead yet (a 300 ms jittery link survives).
    clock.advance(2999);
    expect(peer.session.state).toBe('open');
    clock.advance(1);
    expect(peer.session.state).toBe('destroyed');
    expect(isRelayError(errors[0], 'ERR_MUX_KEEPALIVE_TIMEOUT')).toBe(true);
  });
});
