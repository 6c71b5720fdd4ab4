/** Reading the second half of a log in a worker (lib/report/count_in_worker.ts). */
import assert from "node:assert/strict";
import { countInWorker, splitPoint, WorkerReadError } from "../../lib/report/count_in_worker.ts";
import { LogParser } from "../../lib/report/parse.ts";
import { ConnectionStats } from "../../lib/report/stats.ts";
import { Zone } from "../../lib/report/zone.ts";
import { withTempDir } from "../_util.ts";
import { brokenWorker } from "./_broken_worker.ts";

const T0 = Date.UTC(2026, 10, 25, 8);
const encoder = new TextEncoder();

/** A log of `count` lines from `sources` sources (one in 97 unreadable), as bytes. */
function logBytes(count: number, sources: number): Uint8Array {
  const lines: string[] = [];
  for (let i = 0; i < count; i++) {
    const iso = new Date(T0 + i * 1_003).toISOString();
    const source = (i * 7919) % sources;
    lines.push(
      i % 97 === 0
        ? "garbage\r\n"
        : `${iso.slice(0, 10)} ${iso.slice(11, 23)} [INFO] Connection from 10.${source >> 16}.${
          (source >> 8) & 255
        }.${source & 255} on port ${22 + (i % 3)}\n`,
    );
  }
  return encoder.encode(lines.join(""));
}

/** What one parser counts over `bytes`. */
function countHere(bytes: Uint8Array) {
  const stats = new ConnectionStats();
  const parser = new LogParser(stats, new Zone("UTC"));
  parser.push(bytes);
  parser.end();
  return { counts: parser.counts, stats };
}

const REQUEST = { zone: "UTC", period: {}, maxSources: 1_000_000 };

Deno.test("splitPoint: the first line start after the middle; none without a newline there", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/log`;
    await Deno.writeTextFile(path, "aaaa\nbbbbbbbb\ncc\n");
    using file = await Deno.open(path);
    // The middle (byte 8) is inside "bbbbbbbb": the next line starts at 14.
    assert.equal(await splitPoint(file, 17), 14);
    await Deno.writeTextFile(path, "a".repeat(100));
    using one = await Deno.open(path);
    assert.equal(await splitPoint(one, 100), null);
    // A newline that ends the file starts no line.
    await Deno.writeTextFile(path, "a".repeat(99) + "\n");
    using last = await Deno.open(path);
    assert.equal(await splitPoint(last, 100), null);
  });
});

Deno.test("countInWorker counts from its start exactly as one parser reading those lines", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/log`;
    const bytes = logBytes(5_000, 300);
    await Deno.writeFile(path, bytes);
    using file = await Deno.open(path);
    const start = (await splitPoint(file, bytes.length))!;
    let progress = 0;
    const counted = await countInWorker({ path, start, ...REQUEST }, {
      onProgress: () => progress++,
    }).counts;
    const here = countHere(bytes.subarray(start));
    assert.equal(counted.stoppedAt, null);
    assert.equal(counted.failure, null);
    assert.equal(counted.bytes, bytes.length - start);
    assert.deepEqual(counted.counts, here.counts);
    assert.ok(counted.counts.unreadable > 0 && counted.counts.connections > 0);
    assert.deepEqual(counted.stats, here.stats.data());
    assert.ok(progress > 0);
  });
});

Deno.test("countInWorker stops after maxSources, at a line start; the rest read here makes the whole", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/log`;
    // 60,000 sources in about 4 MB: the worker reads 1 MiB at a time, so it stops in the file.
    const bytes = logBytes(60_000, 60_000);
    await Deno.writeFile(path, bytes);
    const worker = countInWorker({ ...REQUEST, path, start: 0, maxSources: 1_000 }, {
      onProgress: () => {},
    });
    const counted = await worker.counts;
    const stoppedAt = counted.stoppedAt!;
    assert.ok(stoppedAt > 0 && stoppedAt < bytes.length, String(stoppedAt));
    assert.equal(bytes[stoppedAt - 1], 0x0a);
    assert.ok(counted.stats.names.length > 1_000);
    const rest = countHere(bytes.subarray(stoppedAt));
    rest.stats.merge(counted.stats);
    const whole = countHere(bytes);
    assert.equal(counted.counts.lines + rest.counts.lines, whole.counts.lines);
    assert.equal(rest.stats.connections, whole.stats.connections);
    assert.equal(rest.stats.sourceCount, whole.stats.sourceCount);
  });
});

Deno.test("countInWorker: a file it cannot open is a WorkerReadError with the reason", async () => {
  await withTempDir(async (dir) => {
    const error = await countInWorker({ ...REQUEST, path: `${dir}/missing`, start: 0 }, {
      onProgress: () => {},
    })
      .counts.then(() => null, (error: unknown) => error);
    assert.ok(error instanceof WorkerReadError, String(error));
    assert.match(error.message, /no such file/i);
  });
});

Deno.test("countInWorker: a worker that cannot start counts nothing and says why; the caller reads on", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/log`;
    await Deno.writeFile(path, logBytes(100, 10));
    const counted = await countInWorker({ ...REQUEST, path, start: 42 }, {
      onProgress: () => {},
      url: await brokenWorker(dir),
    }).counts;
    assert.match(counted.failure ?? "", /Broken worker/);
    assert.equal(counted.stoppedAt, 42);
    assert.equal(counted.counts.lines, 0);
    assert.equal(counted.stats.names.length, 0);
  });
});
