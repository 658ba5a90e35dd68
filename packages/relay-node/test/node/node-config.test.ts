import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  loadNodeConfigFile,
  parseHostPort,
  parseNodeConfig,
  resolveNodeSettings,
} from '../../src/node/node-config.ts';
import { dialsPeer } from '../../src/node/peer-manager.ts';
import { TOKEN } from './helpers.ts';

const BASE = {
  id: 'bj-1',
  region: 'cn-north-1',
  coordinator: '127.0.0.1:7400',
  token: TOKEN,
  tunnelListen: '127.0.0.1:0',
};

function fieldOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    const e = err as { code?: string; message: string };
    expect(e.code).toBe('ERR_CONFIG_INVALID');
    return e.message.split(':')[0];
  }
  return undefined;
}

describe('node settings', () => {
  it('parses HOST:PORT and [v6]:PORT', () => {
    expect(parseHostPort('127.0.0.1:0', 'x')).toEqual({ host: '127.0.0.1', port: 0 });
    expect(parseHostPort('[::1]:7500', 'x')).toEqual({ host: '::1', port: 7500 });
    expect(fieldOf(() => parseHostPort('localhost', '--tunnel-listen'))).toBe('--tunnel-listen');
    expect(fieldOf(() => parseHostPort('h:70000', '--http-listen'))).toBe('--http-listen');
    expect(fieldOf(() => parseHostPort('h:0', '--coordinator', false))).toBe('--coordinator');
  });

  it('resolves a complete set into RelayNode options with defaults', () => {
    const r = resolveNodeSettings({ ...BASE, forwards: ['2222=ssh'], httpListen: '127.0.0.1:0' });
    expect(r.logLevel).toBe('info');
    expect(r.closeGraceMs).toBe(10_000);
    expect(r.node).toMatchObject({
      id: 'bj-1',
      tunnelListen: { host: '127.0.0.1', port: 0 },
      httpListen: { host: '127.0.0.1', port: 0 },
      forwards: [{ host: '127.0.0.1', port: 2222, origin: 'ssh' }],
      debugHeaders: false,
      entryAcceptor: 'process',
    });
    expect(r.node.advertise).toBeUndefined();
  });

  it('entryAcceptor: process by default with an entry, inline when asked, nothing else', () => {
    const entry = { ...BASE, httpListen: '127.0.0.1:0' };
    expect(resolveNodeSettings({ ...entry, entryAcceptor: 'inline' }).node.entryAcceptor).toBe(
      'inline',
    );
    expect(resolveNodeSettings(BASE).node.entryAcceptor).toBeUndefined();
    expect(fieldOf(() => resolveNodeSettings({ ...entry, entryAcceptor: 'thread' }))).toBe(
      '--entry-acceptor',
    );
  });

  it('entryAcceptorNice: 0-19, only with the acceptor process; unset leaves the entry its default (5)', () => {
    const entry = { ...BASE, httpListen: '127.0.0.1:0' };
    expect(resolveNodeSettings(entry).node.entryAcceptorNice).toBeUndefined();
    for (const nice of [0, 4, 19])
      expect(
        resolveNodeSettings({ ...entry, entryAcceptorNice: nice }).node.entryAcceptorNice,
      ).toBe(nice);
    for (const bad of [-1, 20, 2.5, Number.NaN])
      expect(fieldOf(() => resolveNodeSettings({ ...entry, entryAcceptorNice: bad }))).toBe(
        '--entry-acceptor-nice',
      );
    expect(
      fieldOf(() =>
        resolveNodeSettings({ ...entry, entryAcceptor: 'inline', entryAcceptorNice: 0 }),
      ),
    ).toBe('--entry-acceptor-nice');
    // Without an entry there is no acceptor: accepted and unused, like the lane's settings.
    expect(resolveNodeSettings({ ...BASE, entryAcceptorNice: 0 }).node.entryAcceptorNice).toBe(
      undefined,
    );
    // From a config file: a number; a string is an error there.
    expect(parseNodeConfig({ entryAcceptorNice: 0 }, '/').entryAcceptorNice).toBe(0);
    expect(
      fieldOf(() =>
        resolveNodeSettings({ ...entry, ...parseNodeConfig({ entryAcceptorNice: '5' }, '/') }),
      ),
    ).toBe('--entry-acceptor-nice');
  });

  it('slowLane: on by default with the acceptor process, eager or off when asked, off inline, nothing else', () => {
    const entry = { ...BASE, httpListen: '127.0.0.1:0' };
    expect(resolveNodeSettings(entry).node.slowLane).toBe(true);
    expect(resolveNodeSettings({ ...entry, slowLane: 'eager' }).node.slowLane).toBe('eager');
    expect(
      fieldOf(() => resolveNodeSettings({ ...entry, entryAcceptor: 'inline', slowLane: 'eager' })),
    ).toBe('--slow-lane');
    expect(resolveNodeSettings({ ...entry, slowLane: 'off' }).node.slowLane).toBeUndefined();
    expect(
      resolveNodeSettings({ ...entry, entryAcceptor: 'inline' }).node.slowLane,
    ).toBeUndefined();
    expect(resolveNodeSettings(BASE).node.slowLane).toBeUndefined();
    expect(fieldOf(() => resolveNodeSettings({ ...entry, slowLane: 'yes' }))).toBe('--slow-lane');
    expect(
      fieldOf(() => resolveNodeSettings({ ...entry, entryAcceptor: 'inline', slowLane: 'on' })),
    ).toBe('--slow-lane');
  });

  it('slowLanePolicy: idle or nice, only with the lane; unset leaves the lane its default (idle)', () => {
    const entry = { ...BASE, httpListen: '127.0.0.1:0' };
    expect(resolveNodeSettings(entry).node.slowLanePolicy).toBeUndefined();
    expect(resolveNodeSettings({ ...entry, slowLanePolicy: 'nice' }).node.slowLanePolicy).toBe(
      'nice',
    );
    expect(resolveNodeSettings({ ...entry, slowLanePolicy: 'idle' }).node.slowLanePolicy).toBe(
      'idle',
    );
    expect(fieldOf(() => resolveNodeSettings({ ...entry, slowLanePolicy: 'fifo' }))).toBe(
      '--slow-lane-policy',
    );
    expect(
      fieldOf(() => resolveNodeSettings({ ...entry, slowLane: 'off', slowLanePolicy: 'nice' })),
    ).toBe('--slow-lane-policy');
  });

  it('slowLaneCpus: a CPU list, only with the lane; unset leaves the lane on the node CPUs', () => {
    const entry = { ...BASE, httpListen: '127.0.0.1:0' };
    expect(resolveNodeSettings(entry).node.slowLaneCpus).toBeUndefined();
    for (const list of ['1', '2-3', '0,2-3'])
      expect(resolveNodeSettings({ ...entry, slowLaneCpus: list }).node.slowLaneCpus).toBe(list);
    for (const bad of ['', 'one', '1,', '-1', '1 2'])
      expect(fieldOf(() => resolveNodeSettings({ ...entry, slowLaneCpus: bad }))).toBe(
        '--slow-lane-cpus',
      );
    expect(
      fieldOf(() => resolveNodeSettings({ ...entry, slowLane: 'off', slowLaneCpus: '1' })),
    ).toBe('--slow-lane-cpus');
    // From a config file: YAML reads a lone CPU as a number.
    expect(parseNodeConfig({ slowLaneCpus: 1 }, '/').slowLaneCpus).toBe('1');
    expect(parseNodeConfig({ slowLaneCpus: '0,2' }, '/').slowLaneCpus).toBe('0,2');
    expect(fieldOf(() => parseNodeConfig({ slowLaneCpus: 1.5 }, '/'))).toBe('slowLaneCpus');
    expect(fieldOf(() => parseNodeConfig({ slowLaneCpus: [1] }, '/'))).toBe('slowLaneCpus');
  });

  it('names the offending field', () => {
    expect(fieldOf(() => resolveNodeSettings({ ...BASE, id: '' }))).toBe('--id');
    expect(fieldOf(() => resolveNodeSettings({ ...BASE, id: 'a b' }))).toBe('--id');
    expect(fieldOf(() => resolveNodeSettings({ ...BASE, token: 'short' }))).toBe('--token');
    expect(fieldOf(() => resolveNodeSettings({ ...BASE, advertise: 'http://h:1' }))).toBe(
      '--advertise',
    );
    expect(fieldOf(() => resolveNodeSettings({ ...BASE, egressProxy: 'socks5://h:1' }))).toBe(
      '--egress-proxy',
    );
    expect(fieldOf(() => resolveNodeSettings({ ...BASE, httpAdvertise: 'http://h:1' }))).toBe(
      '--http-advertise',
    );
    expect(fieldOf(() => resolveNodeSettings({ ...BASE, logLevel: 'loud' }))).toBe('--log-level');
  });

  it('reads a config file with a tokenFile; unknown keys are errors', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'relaymesh-node-cfg-'));
    writeFileSync(path.join(dir, 'secret'), `${TOKEN}\n`);
    const good = path.join(dir, 'node.yaml');
    writeFileSync(
      good,
      'id: tk-1\ntokenFile: secret\nforwards: ["2222=ssh"]\ndebugHeaders: true\n',
    );
    expect(loadNodeConfigFile(good)).toEqual({
      id: 'tk-1',
      token: TOKEN,
      forwards: ['2222=ssh'],
      debugHeaders: true,
    });
    const typo = path.join(dir, 'typo.yaml');
    writeFileSync(typo, 'id: tk-1\ntunnel_listen: 127.0.0.1:0\n');
    expect(fieldOf(() => loadNodeConfigFile(typo))).toBe('tunnel_listen');
    const both = path.join(dir, 'both.yaml');
    writeFileSync(both, `token: ${TOKEN}\ntokenFile: secret\n`);
    expect(fieldOf(() => loadNodeConfigFile(both))).toBe('token');
    expect(fieldOf(() => loadNodeConfigFile(path.join(dir, 'missing.yaml')))).toBe('--config');
  });

  it('exactly one side of every pair dials', () => {
    const ids = ['bj-1', 'tk-1', 'hk-1', 'B-2'];
    for (const x of ids) {
      for (const y of ids) {
        if (x !== y) expect(dialsPeer(x, y)).toBe(!dialsPeer(y, x));
      }
    }
  });
});
