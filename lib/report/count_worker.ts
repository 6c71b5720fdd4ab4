/**
 * The worker that reads the second half of a large log file while the report's own thread reads
 * the first (lib/report/count_in_worker.ts): it counts its lines as the report does and posts
 * what it counted. Without V8's JIT the report is bound by interpreting each line, so two cores
 * read a file in little more than half the time.
 */
/// <reference no-default-lib="true" />
/// <reference lib="deno.worker" />
import { isOsError, reason } from "../errors.ts";
import { LogParser, READ_CHUNK_BYTES } from "./parse.ts";
import { ConnectionStats } from "./stats.ts";
import type { CountReply, CountRequest } from "./count_in_worker.ts";
import { Zone } from "./zone.ts";

/**
 * Reads `request.path` from `request.start` to its end, or until more than `request.maxSources`
 * sources were counted (then `stoppedAt` is the start of the first line not read); posts
 * progress, returns the counts.
 */
async function count(request: CountRequest): Promise<CountReply> {
  const stats = new ConnectionStats(request.period);
  const parser = new LogParser(stats, new Zone(request.zone));
  using file = await Deno.open(request.path);
  await file.seek(request.start, Deno.SeekMode.Start);
  const buffer = new Uint8Array(READ_CHUNK_BYTES);
  // Whole lines are pushed, so the parser holds no cut line where the worker may stop: `kept`
  // bytes of a cut line wait at the buffer's start; `offset` is the file offset after the
  // lines pushed. A line longer than the buffer is pushed in parts; no stop inside it.
  let offset = request.start;
  let kept = 0;
  let inLine = false;
  let stoppedAt: number | null = null;
  while (true) {
    if (!inLine && stats.sourceCount > request.maxSources) {
      stoppedAt = offset;
      break;
    }
    const n = await file.read(buffer.subarray(kept));
    if (n === null) {
      parser.push(buffer.subarray(0, kept));
      break;
    }
    const filled = kept + n;
    const lineEnd = buffer.subarray(0, filled).lastIndexOf(0x0a) + 1;
    inLine = lineEnd === 0;
    const pushed = inLine ? filled : lineEnd;
    parser.push(buffer.subarray(0, pushed));
    offset += pushed;
    buffer.copyWithin(0, pushed, filled);
    kept = filled - pushed;
    self.postMessage({ kind: "progress", lines: parser.counts.lines, bytes: parser.bytes });
  }
  parser.end();
  return {
    kind: "done",
    counts: parser.counts,
    bytes: parser.bytes,
    stats: stats.data(),
    stoppedAt,
    failure: null,
  };
}

self.onmessage = async (event: MessageEvent<CountRequest>) => {
  let reply: CountReply;
  try {
    reply = await count(event.data);
  } catch (error) {
    reply = { kind: "failed", reason: isOsError(error) ? reason(error) : String(error) };
  }
  // The columns are moved to the report's thread, not copied.
  const transfer: ArrayBuffer[] = [];
  if (reply.kind === "done") {
    const { counts, first, last, masks, networks } = reply.stats;
    for (const column of [counts, first, last, masks, networks]) {
      transfer.push(column.buffer as ArrayBuffer);
    }
  }
  self.postMessage(reply, transfer);
};
