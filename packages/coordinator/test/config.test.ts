import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { loadClusterConfig, parseClusterConfig } from '@relaymesh/shared';
import { describe, expect, it } from 'vitest';

const TOKEN = 'a-cluster-token-of-some-length';

function errorOf(text: string): { code?: string; message: string } {
  try {
    parseClusterConfig(text);
  } catch (err) {
    return err as { code?: string; message: string };
  }
  throw new Error('expected the config to be rejected');
}

describe('cluster config', () => {
  it('parses origins with defaults', () => {
    const cfg = parseClusterConfig(`
token: ${TOKEN}
origins:
  - name: tokyo-files
    hosts: [files.example.com]
    upstreams: ["http://127.0.0.1:9000", "tcp://127.0.0.1:22", "http://localhost"]
    healthCheck: { path: /health }
`);
    expect(cfg.token).toBe(TOKEN);
    expect(cfg.origins[0]!.upstreams.map((u) => [u.scheme, u.host, u.port])).toEqual([
      ['http', '127.0.0.1', 9000],
      ['tcp', '127.0.0.1', 22],
      ['http', 'localhost', 80],
    ]);
    expect(cfg.origins[0]!.healthCheck).toEqual({
      path: '/health',
      intervalMs: 5000,
      timeoutMs: 2000,
    });
  });

  it.each([
    [
      `origins:\n  - {name: a, hosts: [a.test], upstreams: ["http://x:1"]}\n  - {name: b, hosts: [b.test], upstreams: ["ftp://x"]}`,
      'origins[1].upstreams[0]: "ftp://x" is not an http:// or tcp:// URL',
    ],
    [
      `origins:\n  - {name: a, hosts: [a.test], upstreams: ["tcp://x"]}`,
      'origins[0].upstreams[0]: "tcp://x" needs a port',
    ],
    [
      `origins:\n  - {name: a, hosts: [], upstreams: ["tcp://x:1"]}`,
      'origins[0].hosts: expected a non-empty list',
    ],
    [
      `origins:\n  - {name: a, hosts: [a.test], upstreams: ["tcp://x:1"]}\n  - {name: a, hosts: [b.test], upstreams: ["tcp://x:1"]}`,
      'origins[1].name: "a" is declared twice',
    ],
    [
      `origins:\n  - {name: a, hosts: [a.test], upstreams: ["tcp://x:1"]}\n  - {name: b, hosts: [A.test], upstreams: ["tcp://x:1"]}`,
      'origins[1].hosts[0]: "A.test" is already used by origin "a"',
    ],
    [
      `origins:\n  - {name: a, hosts: [a.test], upstreams: ["tcp://x:1"], healthCheck: {intervalMs: 100, timeoutMs: 500}}`,
      'origins[0].healthCheck.timeoutMs: 500 exceeds intervalMs 100',
    ],
    [
      `origins:\n  - {name: a, hosts: [a.test], upstream: ["tcp://x:1"]}`,
      'origins[0].upstream: unknown field',
    ],
    [`origin: []`, 'origin: unknown field'],
  ])('rejects %#: names the field and the problem', (body, message) => {
    const err = errorOf(`token: ${TOKEN}\n${body}`);
    expect(err.code).toBe('ERR_CONFIG_INVALID');
    expect(err.message).toContain(message);
  });

  it('requires a long enough token and never echoes it', () => {
    const err = errorOf('token: short\norigins: []');
    expect(err.message).toBe('token: missing or shorter than 16 characters');
    expect(errorOf('origins: []').message).toContain('token:');
  });

  it('reads tokenFile relative to the config file, and a token override wins', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'relaymesh-cfg-'));
    writeFileSync(path.join(dir, 'token.txt'), `${TOKEN}-from-file\n`);
    writeFileSync(path.join(dir, 'cluster.yaml'), 'tokenFile: token.txt\norigins: []\n');
    expect(loadClusterConfig(path.join(dir, 'cluster.yaml')).token).toBe(`${TOKEN}-from-file`);
    const over = loadClusterConfig(path.join(dir, 'cluster.yaml'), {
      tokenOverride: `${TOKEN}-cli`,
    });
    expect(over.token).toBe(`${TOKEN}-cli`);
    expect(() => loadClusterConfig(path.join(dir, 'missing.yaml'))).toThrow(
      expect.objectContaining({ code: 'ERR_CONFIG_INVALID' }),
    );
  });
});
