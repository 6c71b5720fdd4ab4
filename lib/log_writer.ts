/**
 * The log target: a file opened for appending (reopened by path on SIGHUP) or standard error.
 *
 * Each line is written with one system call when it is logged, so a connection's line is in the
 * file before its event-loop turn ends (fail2ban bans on it). There is no buffer: Deno accepts
 * one connection per listener and turn, so joining the lines of a turn saved no system call and
 * its microtask cost 4% CPU per connection in the benchmark.
 */
import { dirname } from "node:path";
import { isOsError, plural, reason, withMessage } from "./errors.ts";
import { Throttle } from "./throttle.ts";

/** Mode of a log file that net-bouncer creates (the group may read it: fail2ban, adm). */
export const LOG_FILE_MODE = 0o640;
/** Mode of the log file's parent directories that net-bouncer creates. */
export const LOG_DIR_MODE = 0o750;
/** The shortest interval between two reports of failing writes, in milliseconds. */
export const WRITE_ERROR_REPORT_INTERVAL_MS = 10_000;

/** Something that takes bytes, as `Deno.FsFile` and `Deno.stderr` do. */
export interface WriteTarget {
  /** Writes some of `data`; returns how many bytes were written. */
  writeSync(data: Uint8Array): number;
  /** Releases the target. */
  close(): void;
}

/** Counters of the log target (lib/metrics.ts's `Metrics` in production). */
export interface LogWriterMetrics {
  /** Counts a failed write. */
  writeFailure(): void;
  /** Counts lines dropped because the target failed. */
  droppedLines(count: number): void;
  /** Counts a reopen of the log file. */
  reopen(): void;
}

/** Options of {@linkcode LogWriter}. */
export interface LogWriterOptions {
  /** Counts failed writes, dropped lines and reopens (default: none). */
  metrics?: LogWriterMetrics;
  /** Receives one-line reports about the log target itself (default: `console.error`). */
  report?: (message: string) => void;
  /** Milliseconds since the epoch (default: `Date.now`). */
  clock?: () => number;
  /** Opens a file for appending (default: {@linkcode openLogFile}); tests pass failing ones. */
  open?: (path: string) => WriteTarget;
}

/**
 * Opens `path` for appending, creating it with mode {@linkcode LOG_FILE_MODE} and its missing
 * parent directories with {@linkcode LOG_DIR_MODE}.
 *
 * @throws {Error} of the OS error's class, with a message that names the path and the reason.
 */
export function openLogFile(path: string): WriteTarget {
  try {
    Deno.mkdirSync(dirname(path), { recursive: true, mode: LOG_DIR_MODE });
    return Deno.openSync(path, { append: true, create: true, mode: LOG_FILE_MODE });
  } catch (error) {
    if (!isOsError(error)) throw error;
    // mkdir reports a file where a directory should be as "file exists".
    const why = error instanceof Deno.errors.AlreadyExists
      ? `"${dirname(path)}" is not a directory`
      : reason(error);
    throw withMessage(error, `Cannot open log file "${path}": ${why}`);
  }
}

const encoder = new TextEncoder();

function countLines(bytes: Uint8Array, from: number): number {
  let count = 0;
  for (let i = bytes.indexOf(10, from); i !== -1; i = bytes.indexOf(10, i + 1)) count++;
  return count;
}

/** Writes complete lines to the log target; never throws on a failing write. */
export class LogWriter {
  /** The log file's path, or `null` for standard error. */
  readonly path: string | null;
  /** Lines dropped because the target failed. */
  dropped = 0;
  #target: WriteTarget;
  /** The unwritten end of a line that a failing write cut short; written first. */
  #carry: Uint8Array | null = null;
  /** Dropped lines, counted for the next report. */
  #drops: Throttle;
  #report: (message: string) => void;
  #open: (path: string) => WriteTarget;
  #metrics: LogWriterMetrics | null;

  /** Opens the target: the file at `path`, or standard error for `null`. */
  constructor(path: string | null, options: LogWriterOptions = {}) {
    this.path = path;
    this.#report = options.report ?? console.error;
    this.#drops = new Throttle(WRITE_ERROR_REPORT_INTERVAL_MS, { clock: options.clock });
    this.#open = options.open ?? openLogFile;
    this.#metrics = options.metrics ?? null;
    this.#target = path === null ? Deno.stderr : this.#open(path);
  }

  /** Writes one complete line (ending in a newline) now; never throws on a failing target. */
  write(line: string): void {
    this.writeBytes(encoder.encode(line));
  }

  /** Writes one complete line given as UTF-8 now; `line` is not kept after this returns. */
  writeBytes(line: Uint8Array): void {
    let bytes = line;
    const carried = this.#carry !== null;
    if (this.#carry !== null) {
      const joined = new Uint8Array(this.#carry.length + bytes.length);
      joined.set(this.#carry);
      joined.set(bytes, this.#carry.length);
      bytes = joined;
      this.#carry = null;
    }
    let offset = 0;
    try {
      while (offset < bytes.length) {
        const written = this.#target.writeSync(bytes.subarray(offset));
        if (written === 0) throw new Deno.errors.WriteZero("write returned 0 bytes");
        offset += written;
      }
    } catch (error) {
      if (!isOsError(error)) throw error;
      this.#failed(error, { bytes, offset, carried });
      return;
    }
    if (this.#drops.open) this.#resumed();
  }

  /** Reopens the log file by its path (after rotation); keeps the old file if that fails. */
  reopen(): void {
    if (this.path === null) return;
    let target: WriteTarget;
    try {
      target = this.#open(this.path);
    } catch (error) {
      if (!isOsError(error)) throw error;
      this.#report(`${error.message}; still writing to the previous file`);
      return;
    }
    // The end of a line cut short belongs to the old file: finish it there or give it up.
    if (this.#carry !== null) this.write("");
    if (this.#carry !== null) {
      this.#carry = null;
      this.dropped++;
      this.#drops.pending++;
      this.#metrics?.droppedLines(1);
    }
    this.#target.close();
    this.#target = target;
    this.#metrics?.reopen();
  }

  /** Finishes a line cut short if it can, and closes the file. */
  close(): void {
    if (this.#carry !== null) this.write("");
    if (this.path !== null) this.#target.close();
  }

  #failed(
    error: Error,
    { bytes, offset, carried }: { bytes: Uint8Array; offset: number; carried: boolean },
  ): void {
    // A line cut short is finished first when writes work again, so no partial line remains;
    // the whole lines after it are dropped and counted, which bounds memory on a full disk.
    const midLine = offset === 0 ? carried : bytes[offset - 1] !== 10;
    let rest = offset;
    if (midLine) {
      rest = bytes.indexOf(10, offset) + 1;
      this.#carry = bytes.slice(offset, rest);
    }
    const lost = countLines(bytes, rest);
    this.dropped += lost;
    this.#metrics?.writeFailure();
    if (lost > 0) this.#metrics?.droppedLines(lost);
    const count = this.#drops.fail(lost);
    if (count !== null) {
      this.#report(
        `Cannot write log ${this.#name()}: ${reason(error)}; ` +
          `${plural(count, "line")} dropped since the last report`,
      );
    }
  }

  #resumed(): void {
    const count = this.#drops.recover();
    if (count === null) return; // reported once the interval has passed
    this.#report(
      `Writing log ${this.#name()} again; ${
        plural(count, "more line")
      } dropped since the last report`,
    );
  }

  #name(): string {
    return this.path === null ? "to standard error" : `file "${this.path}"`;
  }
}
