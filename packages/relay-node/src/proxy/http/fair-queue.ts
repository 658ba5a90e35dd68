import type { Socket } from 'node:net';

/**
 * Connections waiting for admission: one FIFO per source address, taken round-robin across
 * addresses, so a client from another address waits one turn, not behind a flood. Used by
 * the admission gate (admission.ts) and, with an acceptor process, by the acceptor
 * (acceptor-child.ts). Imports only node: types: the acceptor loads nothing else.
 */
export class FairQueue<T extends { socket: Socket }> {
  /** Map order is the round-robin order. */
  readonly #queues = new Map<string, T[]>();
  #size = 0;

  /** Waiting now (those destroyed while waiting count until they are skipped). */
  get size(): number {
    return this.#size;
  }

  push(item: T): void {
    const key = item.socket.remoteAddress ?? '';
    const list = this.#queues.get(key);
    if (list) list.push(item);
    else this.#queues.set(key, [item]);
    this.#size++;
  }

  /**
   * The next one whose socket is still open, from the address whose turn it is; that
   * address goes to the back of the order (or out, with none left). `skipped` sees each
   * destroyed one passed over.
   */
  shift(skipped?: (item: T) => void): T | undefined {
    while (this.#size > 0) {
      const [key, list] = this.#queues.entries().next().value as [string, T[]];
      const item = list.shift() as T;
      this.#size--;
      this.#queues.delete(key);
      if (list.length > 0) this.#queues.set(key, list);
      if (!item.socket.destroyed) return item;
      skipped?.(item);
    }
    return undefined;
  }

  /** The address with the most waiting, and how many (undefined when none wait). */
  top(): { source: string; n: number } | undefined {
    let best: { source: string; n: number } | undefined;
    for (const [source, list] of this.#queues)
      if (!best || list.length > best.n) best = { source, n: list.length };
    return best;
  }

  /** Takes every item of one source address out of the queue (its order kept). */
  take(source: string): T[] {
    const list = this.#queues.get(source);
    if (!list) return [];
    this.#queues.delete(source);
    this.#size -= list.length;
    return list;
  }

  /** Empties the queue; returns what waited. */
  clear(): T[] {
    const all = [...this.#queues.values()].flat();
    this.#queues.clear();
    this.#size = 0;
    return all;
  }
}
