/**
 * The log target: a file opened for appending (reopened by path on SIGHUP), standard output
 * (`-l -`, `-l /dev/stdout`) or standard error (the default, `-l /dev/stderr`).
 *
 * Whatever is written is written at once, with one system call, so a connection's line is in
 * the file before its event-loop turn ends (fail2ban bans on it). The writer keeps no buffer of
 * its own: lib/daemon/bouncer.ts joins the lines of one round of accepts (up to 64 KiB) and
 * hands them over in one call.
 *
 * On Linux the file is opened through libc (lib/linux/regular_file.ts): without blocking, and
 * checked by descriptor, so a FIFO swapped in at the path cannot hang a reopen.
 */
import { dirname, resolve } from "node:path";
import { isOsError, NotRegularFileError, plural, quote, reason, withMessage } from "../errors.ts";
import { Throttle } from "./throttle.ts";
import { ERRNO, type Libc, O_APPEND, O_CREAT, O_EXCL, O_WRONLY, OsError } from "../linux/libc.ts";
import { isNotRegular, openRegularFile } from "../linux/regular_file.ts";

/** Mode of a log file that net-bouncer creates (the group may read it: fail2ban, adm). */
export const LOG_FILE_MODE = 0o640;
/** Mode of the log file's parent directories that net-bouncer creates. */
export const LOG_DIR_MODE = 0o750;
/** The shortest interval between two reports of failing writes, in milliseconds. */
export const WRITE_ERROR_REPORT_INTERVAL_MS = 10_000;

/** A standard stream that the log can go to. */
export type StandardStream = "stdout" | "stderr";

/**
 * `-l` values that name a standard stream rather than a file. They are written to as they are:
 * opening `/dev/stdout` would need every Deno permission, which a compiled binary cannot get.
 */
const STREAM_PATHS: Record<string, StandardStream> = {
  "-": "stdout",
  "/dev/stdout": "stdout",
  "/dev/stderr": "stderr",
};

/** The standard stream that a `-l` value names (`null`: standard error), or `null` for a file. */
export function standardStream(path: string | null): StandardStream | null {
  if (path === null) return "stderr";
  return Object.hasOwn(STREAM_PATHS, path) ? STREAM_PATHS[path] : null;
}

/** Something that takes bytes, as `Deno.FsFile` and `Deno.stderr` do. */
export interface WriteTarget {
  /** Writes some of `data`; returns how many bytes were written. */
  writeSync(data: Uint8Array): number;
  /** Releases the target. */
  close(): void;
}

/** Counters of the log target (lib/metrics/metrics.ts's `Metrics` in production). */
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
  /**
   * Monotonic milliseconds that space the reports of failing writes (default:
   * `performance.now`); the wall clock may step back and would silence them.
   */
  clock?: () => number;
  /** Opens a file for appending (default: {@linkcode openLogFile}); tests pass failing ones. */
  open?: (path: string) => WriteTarget;
  /** Standard output (default `Deno.stdout`). */
  stdout?: WriteTarget;
  /** Standard error (default `Deno.stderr`). */
  stderr?: WriteTarget;
}

/**
 * Opens `path` through libc for appending, creating it with mode {@linkcode LOG_FILE_MODE} and
 * its missing parent directories with {@linkcode LOG_DIR_MODE}. Opening never blocks
 * (O_NONBLOCK: a FIFO without a reader fails, one with a reader opens) and the opened
 * descriptor must be a regular file. A symbolic link to a regular file is followed; one whose
 * target does not exist is refused, as {@linkcode openLogFile} does.
 *
 * @throws {Error} with the OS error's `code`, or {@linkcode NotRegularFileError}, with a message
 * that names the path and the reason.
 */
export function openLogFileWithLibc(libc: Libc, path: string): WriteTarget {
  const name = `Cannot open log file ${quote(path)}`;
  const append = O_WRONLY | O_APPEND;
  try {
    for (let attempt = 0;; attempt++) {
      try {
        return openRegularFile(libc, path, append).file;
      } catch (error) {
        if (!(error instanceof OsError) || error.errno !== ERRNO.ENOENT) throw error;
      }
      Deno.mkdirSync(dirname(path), { recursive: true, mode: LOG_DIR_MODE });
      try {
        // O_EXCL: created here, or it existed (made meanwhile, or a link to nothing).
        return openRegularFile(libc, path, append | O_CREAT | O_EXCL, LOG_FILE_MODE).file;
      } catch (error) {
        if (!(error instanceof OsError) || error.errno !== ERRNO.EEXIST) throw error;
        if (attempt > 0) throw danglingLink(name, path);
      }
    }
  } catch (error) {
    if (isNotRegular(error)) throw new NotRegularFileError(`${name}: not a regular file`);
    throw cannotOpen(error, name, path);
  }
}

/** The error for a symbolic link at `path` whose target does not exist. */
function danglingLink(name: string, path: string): Error {
  let target: string;
  try {
    target = quote(resolve(dirname(path), Deno.readLinkSync(path)));
  } catch {
    target = "a file";
  }
  return new Deno.errors.NotFound(
    `${name}: it is a symbolic link to ${target}, which does not exist (create that file first)`,
  );
}

/** `error` with a message that names the log path and the reason. */
function cannotOpen(error: unknown, name: string, path: string): unknown {
  if (error instanceof Deno.errors.NotCapable) {
    // Deno refuses paths such as /dev without every permission: none of them is a log file.
    return new NotRegularFileError(`${name}: not a regular file`, { cause: error });
  }
  if (!isOsError(error) || error.message.startsWith(name)) return error;
  // mkdir reports a file where a directory should be as "file exists", open(2) as ENOTDIR.
  const why = error instanceof Deno.errors.AlreadyExists || error.code === "ENOTDIR"
    ? `${quote(dirname(path))} is not a directory`
    : reason(error);
  return withMessage(error, `${name}: ${why}`);
}

/** The opener of log files: through libc when it is loaded, else {@linkcode openLogFile}. */
export function logFileOpener(libc: Libc | null): (path: string) => WriteTarget {
  return libc === null ? openLogFile : (path) => openLogFileWithLibc(libc, path);
}

/** What is at a log path, looked at without opening it (opening a FIFO blocks). */
type PathKind =
  | { kind: "missing" }
  | { kind: "file" }
  | { kind: "directory" }
  | { kind: "other" }
  | { kind: "dangling link"; target: string }
  | { kind: "unknown" };

function pathKind(path: string): PathKind {
  let info: Deno.FileInfo;
  try {
    info = Deno.lstatSync(path);
    if (info.isSymlink) info = Deno.statSync(path);
  } catch (error) {
    // Looking needs the read permission; without it only the open file can be checked.
    if (error instanceof Deno.errors.NotCapable) return { kind: "unknown" };
    if (!(error instanceof Deno.errors.NotFound)) throw error;
    // lstat found nothing, or found a link whose target stat cannot find.
    try {
      return { kind: "dangling link", target: Deno.readLinkSync(path) };
    } catch {
      return { kind: "missing" };
    }
  }
  if (info.isFile) return { kind: "file" };
  return info.isDirectory ? { kind: "directory" } : { kind: "other" };
}

/**
 * Opens `path` for appending with Deno's API (where libc cannot be loaded), creating it with
 * mode {@linkcode LOG_FILE_MODE} and its missing parent directories with
 * {@linkcode LOG_DIR_MODE}. Only a regular file is opened: what is at the path is looked at
 * first, since opening a FIFO for writing blocks until a reader comes, and the open file is
 * checked again. A FIFO put there between the look and the open still blocks: Deno has no
 * O_NONBLOCK. Both need the read permission: without it the file is opened unchecked. A
 * symbolic link to a regular file is followed; one whose target does not exist is refused: Deno
 * creates no file through a link without every permission.
 *
 * @throws {Error} of the OS error's class, or {@linkcode NotRegularFileError}, with a message
 * that names the path and the reason.
 */
export function openLogFile(path: string): WriteTarget {
  const name = `Cannot open log file ${quote(path)}`;
  try {
    // A file made between the look and the open fails createNew: then look again, once.
    for (let attempt = 0;; attempt++) {
      const found = pathKind(path);
      switch (found.kind) {
        case "missing":
          Deno.mkdirSync(dirname(path), { recursive: true, mode: LOG_DIR_MODE });
          try {
            return Deno.openSync(path, { append: true, createNew: true, mode: LOG_FILE_MODE });
          } catch (error) {
            if (error instanceof Deno.errors.AlreadyExists && attempt === 0) continue;
            throw error;
          }
        case "unknown":
          // Without the read permission Deno can neither stat the path nor fstat the file.
          return Deno.openSync(path, { append: true, create: true, mode: LOG_FILE_MODE });
        case "file": {
          const file = Deno.openSync(path, { append: true });
          if (file.statSync().isFile) return file;
          file.close();
          throw new NotRegularFileError(`${name}: not a regular file`);
        }
        case "directory":
          throw new Deno.errors.IsADirectory(`${name}: is a directory`);
        case "other":
          throw new NotRegularFileError(`${name}: not a regular file`);
        case "dangling link":
          throw new Deno.errors.NotFound(
            `${name}: it is a symbolic link to ${
              quote(resolve(dirname(path), found.target))
            }, which does not exist (create that file first)`,
          );
      }
    }
  } catch (error) {
    throw cannotOpen(error, name, path);
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
  /** The log file's path, or `null` for a standard stream. */
  readonly path: string | null;
  /** The standard stream written to, or `null` for a file. */
  readonly stream: StandardStream | null;
  /** Lines dropped because the target failed. */
  dropped = 0;
  #target: WriteTarget;
  /** The unwritten end of a line that a failing write cut short; written first. */
  #carry: Uint8Array | null = null;
  /** Dropped lines, counted for the next report. */
  #drops: Throttle;
  /** Whether a failure was reported and its recovery not yet. */
  #toldFailure = false;
  #report: (message: string) => void;
  #open: (path: string) => WriteTarget;
  #metrics: LogWriterMetrics | null;

  /**
   * Opens the target: the file at `path`, or the standard stream that `path` names (`null`,
   * `/dev/stderr`: standard error; `-`, `/dev/stdout`: standard output).
   */
  constructor(path: string | null, options: LogWriterOptions = {}) {
    this.stream = standardStream(path);
    this.path = this.stream === null ? path : null;
    this.#report = options.report ?? console.error;
    this.#drops = new Throttle(WRITE_ERROR_REPORT_INTERVAL_MS, { clock: options.clock });
    this.#open = options.open ?? openLogFile;
    this.#metrics = options.metrics ?? null;
    this.#target = this.stream === "stdout"
      ? options.stdout ?? Deno.stdout
      : this.stream === "stderr"
      ? options.stderr ?? Deno.stderr
      : this.#open(this.path!);
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

  /**
   * Reopens the log file by its path (after rotation); keeps the old file if that fails, and
   * reports why. Does nothing for a standard stream.
   */
  reopen(): void {
    if (this.path === null) return;
    let target: WriteTarget;
    try {
      target = this.#open(this.path);
    } catch (error) {
      if (!isOsError(error) && !(error instanceof NotRegularFileError)) throw error;
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

  /** Finishes a line cut short if it can, and closes the file (a standard stream stays open). */
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
    if (count === null) return;
    // The first report of a failure has no earlier one to count from.
    const counted = this.#toldFailure
      ? `${plural(count, "more line")} dropped since the last report`
      : `${plural(count, "line")} dropped` +
        (this.#carry === null ? "" : ", 1 cut short (finished when writing works again)");
    this.#toldFailure = true;
    this.#report(`Cannot write log ${this.#name()}: ${reason(error)}; ${counted}`);
  }

  #resumed(): void {
    const count = this.#drops.recover();
    if (count === null) return; // reported once the interval has passed
    this.#toldFailure = false;
    this.#report(
      `Writing log ${this.#name()} again; ${
        plural(count, "more line")
      } dropped since the last report`,
    );
  }

  #name(): string {
    if (this.stream !== null) {
      return this.stream === "stdout" ? "to standard output" : "to standard error";
    }
    return `file ${quote(this.path!)}`;
  }
}
