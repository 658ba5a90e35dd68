import { FakeClock } from '@relaymesh/shared/testing';
import { describe, expect, it } from 'vitest';
import { Registry } from '../src/membership/registry.ts';

const node = (id: string) => ({
  id,
  region: 'r1',
  advertise: `ws://127.0.0.1:1/${id}`,
  httpAdvertise: '',
  version: 't',
});

describe('Registry leases', () => {
  it('keeps a renewed node up and marks a silent one down after exactly the lease', () => {
    const clock = new FakeClock();
    const reg = new Registry({ clock, leaseMs: 6000, forgetAfterMs: 60_000 });
    const downs: string[] = [];
    reg.on('down', (id: string) => downs.push(id));
    const a = reg.register(node('a'));
    const b = reg.register(node('b'));
    for (let t = 0; t < 10; t++) {
      clock.advance(1000);
      expect(reg.renew('a', a.sessionId)).toBe(true);
    }
    // b never renewed: down at 6000 ms, a still up at 10 000 ms.
    expect(downs).toEqual(['b']);
    expect(reg.get('b')?.status).toBe('down');
    expect(reg.get('a')?.status).toBe('up');
    expect([...reg.upIds()]).toEqual(['a']);
    expect(reg.renew('b', b.sessionId)).toBe(false);
    reg.close();
    expect(clock.pending).toBe(0);
  });

  it('expires at leaseMs after the last renewal, not before', () => {
    const clock = new FakeClock();
    const reg = new Registry({ clock, leaseMs: 6000 });
    const a = reg.register(node('a'));
    clock.advance(3000);
    reg.renew('a', a.sessionId);
    clock.advance(5999);
    expect(reg.get('a')?.status).toBe('up');
    clock.advance(1);
    expect(reg.get('a')?.status).toBe('down');
    reg.close();
  });

  it('forgets a down node after forgetAfterMs and accepts it back by registering', () => {
    const clock = new FakeClock();
    const reg = new Registry({ clock, leaseMs: 1000, forgetAfterMs: 5000 });
    reg.register(node('a'));
    clock.advance(1000);
    expect(reg.get('a')?.status).toBe('down');
    clock.advance(5000);
    expect(reg.get('a')).toBeUndefined();
    const again = reg.register(node('a'));
    expect(reg.isCurrent('a', again.sessionId)).toBe(true);
    reg.close();
  });

  it('re-registration supersedes the old session; the old one cannot renew or mark down', () => {
    const clock = new FakeClock();
    const reg = new Registry({ clock });
    const first = reg.register(node('a'));
    const second = reg.register(node('a'));
    expect(second.sessionId).not.toBe(first.sessionId);
    expect(reg.renew('a', first.sessionId)).toBe(false);
    expect(reg.markDown('a', first.sessionId)).toBe(false);
    expect(reg.get('a')?.status).toBe('up');
    expect(reg.markDown('a', second.sessionId)).toBe(true);
    expect(reg.get('a')?.status).toBe('down');
    reg.close();
  });

  it('refuses more than maxNodes with ERR_COORD_TOO_MANY_NODES', () => {
    const reg = new Registry({ clock: new FakeClock(), maxNodes: 2 });
    reg.register(node('a'));
    reg.register(node('b'));
    expect(() => reg.register(node('c'))).toThrow(
      expect.objectContaining({ code: 'ERR_COORD_TOO_MANY_NODES' }),
    );
    // Re-registering a known node is still fine at the cap.
    expect(() => reg.register(node('a'))).not.toThrow();
    reg.close();
  });
});
