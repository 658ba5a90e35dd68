/** Messages between the entry and its acceptor process (acceptor.ts, acceptor-child.ts). */

export type ToAcceptor =
  /**
   * Listen there; at most `maxWaiting` connections wait (more are accepted and closed).
   * `nice`: the acceptor's own nice value (it lowers its priority below the entry's).
   * `floodConnects`: an address that opens this many connections within a second is
   * reported (`connects`); 0: never.
   */
  | {
      t: 'listen';
      host: string;
      port: number;
      backlog: number;
      maxWaiting: number;
      nice: number;
      floodConnects: number;
    }
  /** Open: hand over every connection as it comes. Not open: one per credit. */
  | { t: 'open'; open: boolean }
  /**
   * The gate lets in `n` more while it is throttled (granted ahead, up to its bucket); a
   * negative `n` takes back credits above a lower rate's bucket.
   */
  | { t: 'credit'; n: number }
  /**
   * Connections from `source` go to the entry's slow lane (`on`), or back to the entry: sent
   * at once as raw handles (`lane` messages), past the gate, with those of `source` waiting
   * now. The lane has an admission gate of its own.
   */
  | { t: 'lane'; source: string; on: boolean }
  /** Stop listening, close the waiting connections, and exit. */
  | { t: 'close' };

export type FromAcceptor =
  | { t: 'listening'; address: string; family: string; port: number }
  /** listen(2) failed: the error's code (EADDRINUSE...) and message. */
  | { t: 'error'; code: string; message: string }
  /** accept(2) failed (EMFILE...) while listening; at most one a second. */
  | { t: 'acceptError'; code: string; message: string }
  /**
   * A connection (the handle comes with the message) that waited `waitedMs` in the queue,
   * sent on a credit or not (the gate was open); `waiting` still wait, `accepted` so far.
   */
  | { t: 'socket'; waitedMs: number; credited: boolean; waiting: number; accepted: number }
  /**
   * Connections waiting now (sent when the first waits, then every 50 ms while any do);
   * `top`: the address with the most of them, and how many (in the reports every 50 ms).
   */
  | { t: 'waiting'; n: number; accepted: number; top?: { source: string; n: number } }
  /**
   * `source` opened `n` connections (the listen message's `floodConnects`) within the
   * second so far: once per address per second, as it happens, gate open or not.
   */
  | { t: 'connects'; source: string; n: number }
  /**
   * A connection for the slow lane: its raw TCP handle comes with the message (not a
   * net.Socket, which would start reading in the entry's process), unread.
   */
  | { t: 'lane' };
