import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RelayError } from '../../src/errors/base.ts';
import {
  type Challenge,
  clientProof,
  decodeHelloMessage,
  encodeChallenge,
  encodeHello,
  encodeWelcome,
  HELLO_MAX_SIZE,
  type Hello,
  HelloKind,
  type HelloTranscript,
  negotiateVersion,
  proofMatches,
  serverProof,
  type Welcome,
} from '../../src/protocol/hello.ts';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const NONCE_S = Buffer.alloc(32, 0x11);
const NONCE_C = Buffer.alloc(32, 0x22);
const MAC = Buffer.alloc(32, 0x33);
const TOKEN = 'correct horse battery staple 0123456789';

const transcript: HelloTranscript = {
  versions: { min: 1, max: 1 },
  version: 1,
  serverNonce: NONCE_S,
  clientNonce: NONCE_C,
  serverNodeId: 'tokyo-1',
  clientNodeId: 'beijing-2',
  region: 'cn-north',
};

describe('hello encoding', () => {
  it('encodes a CHALLENGE as kind, min, max, nonce, id', () => {
    const wire = encodeChallenge({ versions: { min: 1, max: 3 }, nonce: NONCE_S, nodeId: 'n1' });
    expect(wire.toString('hex')).toBe(hex(`c1 01 03 ${'11'.repeat(32)} 02 6e31`).toString('hex'));
    expect(decodeHelloMessage(wire)).toEqual({
      kind: HelloKind.CHALLENGE,
      versions: { min: 1, max: 3 },
      nonce: NONCE_S,
      nodeId: 'n1',
    } satisfies Challenge);
  });

  it('encodes a HELLO as kind, version, nonce, mac, id, region', () => {
    const m = { version: 1, nonce: NONCE_C, mac: MAC, nodeId: 'n2', region: 'eu' };
    const wire = encodeHello(m);
    expect(wire.toString('hex')).toBe(
      hex(`c2 01 ${'22'.repeat(32)} ${'33'.repeat(32)} 02 6e32 02 6575`).toString('hex'),
    );
    expect(decodeHelloMessage(wire)).toEqual({ kind: HelloKind.HELLO, ...m } satisfies Hello);
    const noRegion = encodeHello({ ...m, region: '' });
    expect((decodeHelloMessage(noRegion) as Hello).region).toBe('');
  });

  it('encodes a WELCOME as kind, version, mac', () => {
    const wire = encodeWelcome({ version: 1, mac: MAC });
    expect(wire.toString('hex')).toBe(hex(`c3 01 ${'33'.repeat(32)}`).toString('hex'));
    expect(decodeHelloMessage(wire)).toEqual({
      kind: HelloKind.WELCOME,
      version: 1,
      mac: MAC,
    } satisfies Welcome);
  });

  it('refuses to encode invalid ids', () => {
    const bad = ['', 'has space', 'x'.repeat(129), 'caf\u00e9'];
    for (const nodeId of bad) {
      expect(() =>
        encodeChallenge({ versions: { min: 1, max: 1 }, nonce: NONCE_S, nodeId }),
      ).toThrow(expect.objectContaining({ code: 'ERR_CONFIG_INVALID' }));
    }
  });

  it.each([
    ['a frame (version 1 first)', '01 00 0001 00000001 00000000'],
    ['empty message', ''],
    ['unknown kind', 'c4 01'],
    ['truncated challenge', `c1 01 01 ${'11'.repeat(31)}`],
    ['challenge with trailing byte', `c1 01 01 ${'11'.repeat(32)} 01 61 00`],
    ['challenge with empty node id', `c1 01 01 ${'11'.repeat(32)} 00`],
    ['challenge with empty range', `c1 02 01 ${'11'.repeat(32)} 01 61`],
    ['id length past the end', `c1 01 01 ${'11'.repeat(32)} 05 61`],
    ['id with a control character', `c1 01 01 ${'11'.repeat(32)} 01 0a`],
    ['hello without region length', `c2 01 ${'22'.repeat(64)} 01 61`],
    ['welcome with short mac', `c3 01 ${'33'.repeat(31)}`],
    ['oversize message', `c3 ${'00'.repeat(HELLO_MAX_SIZE)}`],
  ])('rejects %s with ERR_PROTOCOL_BAD_HELLO', (_name, wire) => {
    const out = decodeHelloMessage(hex(wire));
    expect(out).toBeInstanceOf(RelayError);
    expect((out as RelayError).code).toBe('ERR_PROTOCOL_BAD_HELLO');
  });

  it('never throws on random bytes or truncations', () => {
    const valid = [
      encodeChallenge({ versions: { min: 1, max: 1 }, nonce: NONCE_S, nodeId: 'abc' }),
      encodeHello({ version: 1, nonce: NONCE_C, mac: MAC, nodeId: 'abc', region: 'r' }),
      encodeWelcome({ version: 1, mac: MAC }),
    ];
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        const out = decodeHelloMessage(Buffer.from(bytes));
        if (out instanceof RelayError) expect(out.code).toBe('ERR_PROTOCOL_BAD_HELLO');
      }),
      { numRuns: 1000 },
    );
    for (const wire of valid) {
      for (let cut = 0; cut < wire.length; cut++) {
        expect((decodeHelloMessage(wire.subarray(0, cut)) as RelayError).code).toBe(
          'ERR_PROTOCOL_BAD_HELLO',
        );
      }
    }
  });
});

describe('hello proofs', () => {
  it('verifies with the same token and fails with another', () => {
    const mac = clientProof(TOKEN, transcript);
    expect(mac).toHaveLength(32);
    expect(proofMatches(clientProof(TOKEN, transcript), mac)).toBe(true);
    expect(proofMatches(clientProof(`${TOKEN}x`, transcript), mac)).toBe(false);
    expect(proofMatches(mac.subarray(0, 31), mac)).toBe(false);
  });

  it('client and server proofs differ, so neither can be reflected', () => {
    expect(clientProof(TOKEN, transcript).equals(serverProof(TOKEN, transcript))).toBe(false);
  });

  it('every transcript field changes the proof', () => {
    const base = clientProof(TOKEN, transcript).toString('hex');
    const variants: HelloTranscript[] = [
      { ...transcript, versions: { min: 0, max: 1 } },
      { ...transcript, versions: { min: 1, max: 2 } },
      { ...transcript, version: 2 },
      { ...transcript, serverNonce: Buffer.alloc(32, 0x12) },
      { ...transcript, clientNonce: Buffer.alloc(32, 0x23) },
      { ...transcript, serverNodeId: 'tokyo-2' },
      { ...transcript, clientNodeId: 'beijing-3' },
      { ...transcript, region: 'cn-south' },
      // Moving bytes between adjacent ids must not collide (length prefixes).
      { ...transcript, serverNodeId: 'tokyo-1b', clientNodeId: 'eijing-2' },
      { ...transcript, clientNodeId: 'beijing-2c', region: 'n-north' },
    ];
    const seen = new Set([base]);
    for (const v of variants) seen.add(clientProof(TOKEN, v).toString('hex'));
    expect(seen.size).toBe(variants.length + 1);
  });

  it('refuses an empty token', () => {
    expect(() => clientProof('', transcript)).toThrow(
      expect.objectContaining({ code: 'ERR_CONFIG_INVALID' }),
    );
  });
});

describe('version negotiation', () => {
  it.each([
    [{ min: 1, max: 1 }, { min: 1, max: 1 }, 1],
    [{ min: 1, max: 3 }, { min: 2, max: 5 }, 3],
    [{ min: 2, max: 5 }, { min: 1, max: 3 }, 3],
    [{ min: 1, max: 4 }, { min: 4, max: 4 }, 4],
  ])('%o with %o picks %i', (a, b, v) => {
    expect(negotiateVersion(a, b)).toBe(v);
  });

  it('fails with ERR_PROTOCOL_BAD_VERSION naming both ranges', () => {
    const out = negotiateVersion({ min: 1, max: 1 }, { min: 2, max: 3 });
    expect(out).toBeInstanceOf(RelayError);
    expect((out as RelayError).code).toBe('ERR_PROTOCOL_BAD_VERSION');
    expect((out as RelayError).message).toBe(
      'no common protocol version: we speak 1-1, peer speaks 2-3',
    );
    expect((negotiateVersion({ min: 3, max: 4 }, { min: 1, max: 2 }) as RelayError).code).toBe(
      'ERR_PROTOCOL_BAD_VERSION',
    );
  });
});
