/**
 * Reads the second half of a large log file in a worker (lib/report/count_worker.ts) while the
 * caller reads the first: the counts are exact, as if one parser had read every line.
 */
import type { LineCounts } from "./parse.ts";
import { ConnectionStats, type Period, type StatsData } from "./stats.ts";

/**
 * Plain files at least this large are read in two halves at once. Below it the worker's start
 * (about 25 ms) would cost more than it saves.
 */
export const PARALLEL_MIN_BYTES = 16 * 1024 * 1024;
/**
 * A worker that has counted more distinct sources than this stops where it is: merging its rows
 * would cost about as much as reading their lines, and both halves' memory would add up (a log
 * of a million sources took 300 MB in two halves, 215 MB in one). The caller reads the rest.
 */
export const MAX_WORKER_SOURCES = 50_000;
/** Where a file is split is the first line start after its middle, looked for this far on. */
const SPLIT_WINDOW_BYTES = 64 * 1024;

/** What the worker is asked to read. */
export interface CountRequest {
  /** The file, and the byte offset (a line's start) it reads from, to the end. */
  path: string;
  start: number;
  /** The time zone's name (text lines are read in it) and the report's period. */
  zone: string;
  period: Period;
  /** It stops after counting more distinct sources than this (MAX_WORKER_SOURCES). */
  maxSources: number;
}

/** What the worker posts: progress, then its counts or why it could not read. */
export type CountReply =
  | { kind: "progress"; lines: number; bytes: number }
  | {
    kind: "done";
    counts: LineCounts;
    bytes: number;
    stats: StatsData;
    /** Where the worker stopped (a line's start) if it did not read to the end, else `null`. */
    stoppedAt: number | null;
    /**
     * Why the worker itself failed (it could not start, say), else `null`: then it counted
     * nothing and `stoppedAt` is where it was to start.
     */
    failure: string | null;
  }
  | { kind: "failed"; reason: string };

/** What the worker counted. */
export type WorkerCounts = Extract<CountReply, { kind: "done" }>;

/** A failure of the worker: its reason (an OS error's, as the report words them). */
export class WorkerReadError extends Error {
  /** Creates the error with the worker's `reason`. */
  constructor(reason: string) {
    super(reason);
    this.name = "WorkerReadError";
  }
}

/**
 * The offset of the first line that starts after the middle of `file` (`size` bytes), or `null`
 * when no line starts in the window after it. Moves the file's position.
 */
export async function splitPoint(file: Deno.FsFile, size: number): Promise<number | null> {
  const middle = Math.floor(size / 2);
  await file.seek(middle, Deno.SeekMode.Start);
  const window = new Uint8Array(SPLIT_WINDOW_BYTES);
  const n = await file.read(window);
  if (n === null) return null;
  const newline = window.subarray(0, n).indexOf(0x0a);
  const split = middle + newline + 1;
  return newline < 0 || split >= size ? null : split;
}

/** A worker counting part of a file. */
export interface CountingWorker {
  /** Its counts; rejects with a {@linkcode WorkerReadError} if it cannot read. */
  counts: Promise<WorkerCounts>;
  /** Ends the worker (when the caller gives up); nothing once it has posted its counts. */
  terminate(): void;
}

/** What a worker that failed has counted: nothing, from where it was to start. */
function nothingCounted(start: number, failure: string): WorkerCounts {
  const counts = { lines: 0, connections: 0, otherEvents: 0, unreadable: 0, outOfRange: 0 };
  const stats = new ConnectionStats().data();
  return { kind: "done", counts, bytes: 0, stats, stoppedAt: start, failure };
}

/**
 * Counts `request.path` from `request.start` in a worker; `onProgress` gets its lines and bytes
 * so far. A worker that fails itself (its module cannot load, say) counts nothing: the caller
 * reads from where it was to start (`failure` says why). `url` is the worker's module.
 */
export function countInWorker(
  request: CountRequest,
  options: {
    onProgress: (lines: number, bytes: number) => void;
    url?: URL;
  },
): CountingWorker {
  const url = options.url ?? new URL("./count_worker.ts", import.meta.url);
  const worker = new Worker(url, { type: "module" });
  const counts = new Promise<WorkerCounts>((resolve, reject) => {
    worker.onmessage = (event: MessageEvent<CountReply>) => {
      const reply = event.data;
      if (reply.kind === "progress") return options.onProgress(reply.lines, reply.bytes);
      worker.terminate();
      if (reply.kind === "done") resolve(reply);
      else reject(new WorkerReadError(reply.reason));
    };
    worker.onerror = (event) => {
      // Not the file's fault: the report reads on without the worker, and says so.
      event.preventDefault();
      worker.terminate();
      resolve(nothingCounted(request.start, event.message));
    };
  });
  // Handled by the caller when it awaits; a failure while it reads its own half must not go
  // unhandled meanwhile.
  counts.catch(() => {});
  worker.postMessage(request);
  return { counts, terminate: () => worker.terminate() };
}
