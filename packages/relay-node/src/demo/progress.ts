/** Human formatting and progress display of the demo (stderr; no library code writes to the console). */

/** `12.3 MiB`, `850 KiB`, `512 B`. */
export function formatBytes(n: number): string {
  if (n >= 1024 * 1024) return `${(n / (1024 * 1024)).toFixed(1)} MiB`;
  if (n >= 1024) return `${(n / 1024).toFixed(0)} KiB`;
  return `${Math.round(n)} B`;
}

/** `11.8 MB/s (94.4 Mbit/s)` or `30.5 KB/s (0.24 Mbit/s)`: both units, since the story is told in both. */
export function formatRate(bytesPerSec: number): string {
  const mbit = (bytesPerSec * 8) / 1e6;
  const bytes =
    bytesPerSec >= 1e6
      ? `${(bytesPerSec / 1e6).toFixed(1)} MB/s`
      : `${(bytesPerSec / 1e3).toFixed(1)} KB/s`;
  return `${bytes} (${mbit < 10 ? mbit.toFixed(2) : mbit.toFixed(1)} Mbit/s)`;
}

/** `5s`, `3m 20s`, `2h 05m`. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '--';
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/** Where the demo's human output goes. */
export interface DemoOutput {
  /** One line of the story. */
  line(text: string): void;
  /** A progress display for one download of `total` bytes. */
  progress(label: string, total: number): ProgressDisplay;
}

export interface ProgressDisplay {
  update(bytes: number): void;
  /** Ends the display with a final line. */
  done(text: string): void;
}

const BAR_WIDTH = 28;
/** Plain (non-TTY) progress lines at most this often: readable CI logs. */
const PLAIN_EVERY_MS = 2000;
/** TTY redraws at most this often. */
const TTY_EVERY_MS = 100;

function progressText(label: string, bytes: number, total: number, startedAt: number): string {
  const secs = (performance.now() - startedAt) / 1000;
  const rate = secs > 0 ? bytes / secs : 0;
  const eta = rate > 0 ? ((total - bytes) / rate) * 1000 : Number.POSITIVE_INFINITY;
  return `${label} ${formatBytes(bytes)} / ${formatBytes(total)}  ${formatRate(rate)}  ETA ${formatDuration(eta)}`;
}

function bar(bytes: number, total: number): string {
  const filled = Math.min(BAR_WIDTH, Math.round((bytes / Math.max(1, total)) * BAR_WIDTH));
  return `[${'#'.repeat(filled)}${'-'.repeat(BAR_WIDTH - filled)}]`;
}

/**
 * Output on a stream (stderr): a redrawn bar when `tty`, otherwise a plain line every 2 s.
 * `quiet` drops everything (the `--json` mode keeps stdout for the document only).
 */
export function streamOutput(
  stream: NodeJS.WritableStream,
  opts: { tty: boolean; quiet?: boolean },
): DemoOutput {
  if (opts.quiet) {
    const none: ProgressDisplay = { update() {}, done() {} };
    return { line() {}, progress: () => none };
  }
  const write = (s: string) => {
    stream.write(s);
  };
  return {
    // On a TTY the line replaces a bar being drawn; the next update redraws it below.
    line: (text) => write(`${opts.tty ? '\r\x1b[2K' : ''}${text}\n`),
    progress(label, total) {
      const startedAt = performance.now();
      let shownAt = startedAt;
      let last = 0;
      return {
        update(bytes) {
          last = bytes;
          const now = performance.now();
          if (now - shownAt < (opts.tty ? TTY_EVERY_MS : PLAIN_EVERY_MS)) return;
          shownAt = now;
          const text = progressText(label, bytes, total, startedAt);
          if (opts.tty) write(`\r\x1b[2K${bar(bytes, total)} ${text}`);
          else write(`  ${text}\n`);
        },
        done(text) {
          if (opts.tty) write(`\r\x1b[2K${bar(last, total)} ${text}\n`);
          else write(`  ${text}\n`);
        },
      };
    },
  };
}
