/**
 * One fresh process of malloc-trim.bench.ts: downloads PATH from the origin at
 * http://127.0.0.1:PORT with an undici Client (dispatch API, the exit's way of reading
 * origins) back to back for `seconds`, then prints {"MBps":N,"cores":N}: its rate and the
 * CPU it used. Argument: {"port":P,"path":PATH,"seconds":S}.
 */
import { Client } from 'undici';

const args = JSON.parse(process.argv[2] ?? '{}') as {
  port: number;
  path: string;
  seconds: number;
};
const client = new Client(`http://127.0.0.1:${args.port}`);
const one = () =>
  new Promise<number>((resolve, reject) => {
    let n = 0;
    client.dispatch(
      { method: 'GET', path: args.path },
      {
        onRequestStart() {},
        onResponseStart() {},
        onResponseData(_c, chunk) {
          n += chunk.length;
        },
        onResponseEnd() {
          resolve(n);
        },
        onResponseError(_c, err) {
          reject(err);
        },
      },
    );
  });
const t0 = performance.now();
const cpu0 = process.cpuUsage();
let bytes = 0;
while (performance.now() - t0 < args.seconds * 1000) bytes += await one();
const ms = performance.now() - t0;
const cpu = process.cpuUsage(cpu0);
process.stdout.write(
  `${JSON.stringify({ MBps: bytes / ms / 1000, cores: (cpu.user + cpu.system) / 1000 / ms })}\n`,
);
await client.close();
