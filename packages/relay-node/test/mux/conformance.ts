import { isRelayError, WireCode } from '@relaymesh/shared';
import { afterEach, describe, expect, it } from 'vitest';
import type { MuxStream, Session } from '../../src/index.ts';
import {
  collect,
  digest,
  nextStream,
  random,
  sha256,
  streamError,
  tick,
  until,
  within,
  writeAll,
} from './helpers.ts';

export interface MuxPair {
  client: Session;
  server: Session;
  cleanup(): Promise<void>;
}

/**
 * The behaviour every relaymux transport must show, whatever carries the frames. Sessions
 * must use the default MuxConfig and have no 'stream' listener attached when handed over.
 * `client` opens odd ids, `server` even; which of them accepted the connection is up to
 * `makePair`.
 */
export function runMuxConformance(name: string, makePair: () => Promise<MuxPair>): void {
  describe(`mux conformance: ${name}`, () => {
    let pair: MuxPair | undefined;
    const setup = async () => {
      pair = await makePair();
      return pair;
    };
    afterEach(async () => {
      await pair?.cleanup();
      pair = undefined;
    });

    it('opens a stream and echoes', async () => {
      const { client, server } = await setup();
      server.on('stream', (s: MuxStream) => s.pipe(s));
      const s = client.open();
      const closedOnce = within(new Promise((r) => s.once('close', r)), 5000, 'close');
      expect(s.id % 2).toBe(1);
      s.end(Buffer.from('hello relaymux'));
      expect((await collect(s)).toString()).toBe('hello relaymux');
      await closedOnce;
      await until(() => client.streamCount === 0 && server.streamCount === 0);
    });

    it('opens from the server side with even ids', async () => {
      const { client, server } = await setup();
      client.on('stream', (s: MuxStream) => s.pipe(s));
      const s = server.open();
      expect(s.id % 2).toBe(0);
      s.end(Buffer.from('ping'));
      expect((await collect(s)).toString()).toBe('ping');
    });

    it('carries 8 MiB each way intact (sha256)', async () => {
      const { client, server } = await setup();
      const up = random(8 * 1024 * 1024);
      const down = random(8 * 1024 * 1024);
      const serverSide = nextStream(server);
      const s = client.open();
      const ss = await serverSide;
      const [got1, got2] = await Promise.all([
        digest(ss),
        digest(s),
        writeAll(s, up),
        writeAll(ss, down),
      ]);
      expect(got1).toEqual({ bytes: up.length, sha256: sha256(up) });
      expect(got2).toEqual({ bytes: down.length, sha256: sha256(down) });
    });

    it('half-closes client→server, the other direction keeps flowing', async () => {
      const { client, server } = await setup();
      const serverSide = nextStream(server);
      const s = client.open();
      s.end(Buffer.from('request'));
      const ss = await serverSide;
      expect((await collect(ss)).toString()).toBe('request');
      ss.write(Buffer.from('response part 1, '));
      await tick();
      ss.end(Buffer.from('part 2'));
      expect((await collect(s)).toString()).toBe('response part 1, part 2');
    });

    it('half-closes server→client, the other direction keeps flowing', async () => {
      const { client, server } = await setup();
      const serverSide = nextStream(server);
      const s = client.open();
      s.write(Buffer.from('x'));
      const ss = await serverSide;
      ss.end(Buffer.from('early answer'));
      const fromServer = collect(s);
      const fromClient = collect(ss);
      expect((await fromServer).toString()).toBe('early answer');
      s.end(Buffer.from('late request'));
      expect((await fromClient).toString()).toBe('xlate request');
    });

    it('resets client→server with a code that arrives', async () => {
      const { client, server } = await setup();
      const serverSide = nextStream(server);
      const s = client.open();
      s.write(Buffer.from('some data'));
      const ss = await serverSide;
      const err = streamError(ss);
      s.reset(WireCode.UPSTREAM_RESET);
      const e = await err;
      expect(isRelayError(e, 'ERR_MUX_STREAM_RESET')).toBe(true);
      expect((e as { details?: Record<string, unknown> }).details?.wireCode).toBe(
        WireCode.UPSTREAM_RESET,
      );
      expect(ss.resetCode).toBe(WireCode.UPSTREAM_RESET);
      expect(s.resetCode).toBe(WireCode.UPSTREAM_RESET);
      await until(() => client.streamCount === 0 && server.streamCount === 0);
    });

    it('resets server→client with a code that arrives', async () => {
      const { client, server } = await setup();
      const serverSide = nextStream(server);
      const s = client.open();
      s.write(Buffer.from('some data'));
      const ss = await serverSide;
      const err = streamError(s);
      ss.reset(WireCode.NO_ROUTE);
      const e = await err;
      expect(isRelayError(e, 'ERR_MUX_STREAM_RESET')).toBe(true);
      expect(s.resetCode).toBe(WireCode.NO_ROUTE);
    });

    it('runs 200 streams at once', async () => {
      const { client, server } = await setup();
      server.on('stream', (s: MuxStream) => s.pipe(s));
      const payloads = Array.from({ length: 200 }, (_, i) => random(1000 + i * 97));
      const results = await Promise.all(
        payloads.map(async (p) => {
          const s = client.open();
          const got = collect(s, 15_000);
          s.end(p);
          return got;
        }),
      );
      for (const [i, r] of results.entries()) expect(r.equals(payloads[i]!)).toBe(true);
      await until(() => client.streamCount === 0 && server.streamCount === 0);
    });

    it('a reader that never reads does not stall another stream', async () => {
      const { client, server } = await setup();
      const inbound: MuxStream[] = [];
      server.on('stream', (s: MuxStream) => {
        s.on('error', () => {});
        inbound.push(s);
      });
      const stuck = client.open();
      stuck.on('error', () => {});
      stuck.write(random(4 * 1024 * 1024));
      await until(() => inbound.length === 1);
      const data = random(4 * 1024 * 1024);
      const busy = client.open();
      busy.on('error', () => {});
      await until(() => inbound.length === 2);
      const [got] = await Promise.all([digest(inbound[1]!), writeAll(busy, data)]);
      expect(got.sha256).toBe(sha256(data));
      // The stuck stream's peer holds at most what its window allowed.
      expect(inbound[0]!.readableLength).toBeLessThanOrEqual(inbound[0]!.receiveWindow);
      stuck.reset(WireCode.CANCEL);
    });

    it('blocks a writer at an exhausted window and resumes without loss', async () => {
      const { client, server } = await setup();
      const serverSide = nextStream(server);
      const s = client.open();
      s.on('error', () => {});
      const data = random(3 * 1024 * 1024);
      let accepted = 0;
      const writes = (async () => {
        for (let off = 0; off < data.length; off += 16 * 1024) {
          const part = data.subarray(off, off + 16 * 1024);
          await new Promise<void>((resolve, reject) =>
            s.write(part, (err) => (err ? reject(err) : resolve())),
          );
          accepted += part.length;
        }
        s.end();
      })();
      const ss = await serverSide;
      ss.on('error', () => {});
      ss.pause();
      await until(() => ss.readableLength >= 200 * 1024, 5000, 'window filled');
      await tick(100);
      const stalledAt = accepted;
      await tick(100);
      expect(accepted).toBe(stalledAt);
      expect(accepted).toBeLessThan(data.length);
      expect(ss.readableLength).toBeLessThanOrEqual(ss.receiveWindow);
      const got = digest(ss);
      ss.resume();
      await writes;
      expect((await got).sha256).toBe(sha256(data));
    });

    it('go-away: no new streams either way, existing ones finish', async () => {
      const { client, server } = await setup();
      const serverSide = nextStream(server);
      const s = client.open();
      s.write(Buffer.from('before '));
      const ss = await serverSide;
      const gotGoAway = within(
        new Promise<number>((r) => client.once('goaway', r)),
        5000,
        'goaway',
      );
      server.goAway();
      expect(await gotGoAway).toBe(WireCode.NORMAL);
      expect(server.state).toBe('draining');
      expect(client.state).toBe('draining');
      expect(() => client.open()).toThrow(expect.objectContaining({ code: 'ERR_MUX_GOING_AWAY' }));
      expect(() => server.open()).toThrow(expect.objectContaining({ code: 'ERR_MUX_GOING_AWAY' }));
      const fromClient = collect(ss);
      s.end(Buffer.from('after'));
      expect((await fromClient).toString()).toBe('before after');
      ss.end(Buffer.from('bye'));
      expect((await collect(s)).toString()).toBe('bye');
      await within(Promise.all([server.close(), client.close()]), 5000, 'close both');
      expect(server.state).toBe('closed');
    });

    it('peer death mid-stream fails every stream with ERR_MUX_SESSION_CLOSED', async () => {
      const { client, server } = await setup();
      server.on('stream', (s: MuxStream) => s.on('error', () => {}));
      const streams = [client.open(), client.open(), client.open()];
      const errors = streams.map((s) => streamError(s));
      for (const s of streams) s.write(random(64 * 1024));
      await until(() => server.streamCount === 3);
      server.destroy();
      for (const e of await Promise.all(errors)) {
        expect(isRelayError(e, 'ERR_MUX_SESSION_CLOSED')).toBe(true);
      }
      // No RST crossed the wire: the stream error says why they died.
      for (const s of streams) expect(s.resetCode).toBeUndefined();
      await within(client.closed, 5000, 'client closed');
      expect(client.state).toBe('destroyed');
      expect(() => client.open()).toThrow(
        expect.objectContaining({ code: 'ERR_MUX_SESSION_CLOSED' }),
      );
    });

    it('refuses streams beyond the accept backlog with RST', async () => {
      const { client, server } = await setup();
      const backlog = server.config.acceptBacklog;
      const streams = Array.from({ length: backlog + 5 }, () => client.open());
      const refused = streams.slice(backlog).map((s) => streamError(s));
      for (const e of await Promise.all(refused)) {
        expect(isRelayError(e, 'ERR_MUX_BACKLOG_FULL')).toBe(true);
        expect((e as { details?: Record<string, unknown> }).details?.wireCode).toBe(
          WireCode.REFUSED_STREAM,
        );
      }
      let accepted = 0;
      server.on('stream', (s: MuxStream) => {
        accepted++;
        s.resume();
        s.end();
      });
      await until(() => accepted === backlog, 5000, 'backlog delivered');
      for (const s of streams.slice(0, backlog)) {
        s.resume();
        s.end();
      }
      await until(() => client.streamCount === 0 && server.streamCount === 0);
    });

    it('refuses to open beyond maxConcurrentStreams locally', async () => {
      const { client, server } = await setup();
      server.on('stream', (s: MuxStream) => s.on('error', () => {}));
      const max = client.config.maxConcurrentStreams;
      const streams: MuxStream[] = [];
      for (let i = 0; i < max; i++) streams.push(client.open());
      expect(() => client.open()).toThrow(
        expect.objectContaining({ code: 'ERR_MUX_TOO_MANY_STREAMS' }),
      );
      for (const s of streams) s.reset(WireCode.CANCEL);
      expect(client.streamCount).toBe(0);
      client.open().on('error', () => {});
    });
  });
}
