import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { type Clock, RelayError, systemClock, type TimerHandle } from '@relaymesh/shared';

/** What a node announces when it registers. */
export interface NodeAnnouncement {
  id: string;
  region: string;
  advertise: string;
  httpAdvertise: string;
  version: string;
}

export type NodeStatus = 'up' | 'down';

/** A node as the coordinator tracks it. */
export interface NodeRecord extends NodeAnnouncement {
  status: NodeStatus;
  /** Changes on every registration: a stale session stream cannot renew a newer lease. */
  sessionId: string;
  /** Clock time after which the node is down unless renewed. */
  expiresAt: number;
}

/** Lease settings. */
export interface RegistryOptions {
  /** A node not heard from for this long is down and leaves all routes. @default 6000 */
  leaseMs: number;
  /** A down node is forgotten (leaves `relaymesh nodes`) after this long. @default 600000 */
  forgetAfterMs: number;
  /** Most nodes tracked (up or down); more registrations fail. @default 1000 */
  maxNodes: number;
  clock: Clock;
}

export const DEFAULT_LEASE_MS = 6000;

interface Entry {
  record: NodeRecord;
  timer: TimerHandle | undefined;
}

/**
 * Membership with leases. Events: 'change' () after any registration, expiry or removal
 * (the caller recomputes); 'down' (id, reason: 'lease' | 'left') when a node goes down.
 * Driven by the injected Clock: one timer per node, re-armed lazily, so renewing a lease
 * costs no timer churn.
 */
export class Registry extends EventEmitter {
  readonly #opts: RegistryOptions;
  readonly #entries = new Map<string, Entry>();
  #closed = false;

  constructor(options: Partial<RegistryOptions> = {}) {
    super();
    this.#opts = {
      leaseMs: options.leaseMs ?? DEFAULT_LEASE_MS,
      forgetAfterMs: options.forgetAfterMs ?? 600_000,
      maxNodes: options.maxNodes ?? 1000,
      clock: options.clock ?? systemClock,
    };
  }

  get leaseMs(): number {
    return this.#opts.leaseMs;
  }

  /**
   * Registers (or re-registers) a node and opens a fresh lease. Throws
   * ERR_COORD_TOO_MANY_NODES when the registry is full, ERR_CLOSED after close().
   */
  register(a: NodeAnnouncement): NodeRecord {
    if (this.#closed) throw new RelayError('ERR_CLOSED', 'registry is closed');
    const old = this.#entries.get(a.id);
    if (old === undefined && this.#entries.size >= this.#opts.maxNodes) {
      throw new RelayError(
        'ERR_COORD_TOO_MANY_NODES',
        `registry full at ${this.#opts.maxNodes} nodes`,
      );
    }
    if (old !== undefined) this.#clearTimer(old);
    const record: NodeRecord = {
      ...a,
      status: 'up',
      sessionId: randomUUID(),
      expiresAt: this.#opts.clock.now() + this.#opts.leaseMs,
    };
    const entry: Entry = { record, timer: undefined };
    this.#entries.set(a.id, entry);
    this.#arm(entry, this.#opts.leaseMs);
    this.emit('change');
    return record;
  }

  /** Extends the lease of a live session. False when the session is unknown or superseded. */
  renew(id: string, sessionId: string): boolean {
    const e = this.#entries.get(id);
    if (e === undefined || e.record.sessionId !== sessionId || e.record.status !== 'up') {
      return false;
    }
    e.record.expiresAt = this.#opts.clock.now() + this.#opts.leaseMs;
    return true;
  }

  /**
   * Marks a node down at once (it said goodbye). False when `sessionId` is not its live
   * session, so an old stream closing never takes down a newer registration.
   */
  markDown(id: string, sessionId: string): boolean {
    const e = this.#entries.get(id);
    if (e === undefined || !this.isCurrent(id, sessionId)) return false;
    this.#clearTimer(e);
    e.record.status = 'down';
    this.#arm(e, this.#opts.forgetAfterMs);
    this.emit('down', id, 'left');
    this.emit('change');
    return true;
  }

  /** True when `sessionId` is the live session of node `id`. */
  isCurrent(id: string, sessionId: string): boolean {
    const r = this.#entries.get(id)?.record;
    return r !== undefined && r.sessionId === sessionId && r.status === 'up';
  }

  get(id: string): NodeRecord | undefined {
    return this.#entries.get(id)?.record;
  }

  /** All tracked nodes, sorted by id. */
  list(): NodeRecord[] {
    return [...this.#entries.values()].map((e) => e.record).sort((a, b) => (a.id < b.id ? -1 : 1));
  }

  /** Ids of nodes that are up. */
  upIds(): Set<string> {
    return new Set(
      this.list()
        .filter((r) => r.status === 'up')
        .map((r) => r.id),
    );
  }

  /** Stops every timer. Idempotent. */
  close(): void {
    this.#closed = true;
    for (const e of this.#entries.values()) this.#clearTimer(e);
  }

  #clearTimer(e: Entry): void {
    if (e.timer !== undefined) this.#opts.clock.clearTimeout(e.timer);
    e.timer = undefined;
  }

  #arm(e: Entry, ms: number): void {
    e.timer = this.#opts.clock.setTimeout(() => this.#onTimer(e), Math.max(0, ms));
  }

  #onTimer(e: Entry): void {
    e.timer = undefined;
    if (this.#closed || this.#entries.get(e.record.id) !== e) return;
    const now = this.#opts.clock.now();
    if (e.record.status === 'down') {
      this.#entries.delete(e.record.id);
      this.emit('change');
      return;
    }
    if (now < e.record.expiresAt) {
      this.#arm(e, e.record.expiresAt - now);
      return;
    }
    e.record.status = 'down';
    this.#arm(e, this.#opts.forgetAfterMs);
    this.emit('down', e.record.id, 'lease');
    this.emit('change');
  }
}
