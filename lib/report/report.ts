/**
 * `net-bouncer report`: summarises log files (text or JSON lines, plain or gzip) as text for a
 * terminal, JSON for scripts or one self-contained HTML page.
 */
import { Duplex } from "node:stream";
import { createGunzip } from "node:zlib";
import { isOsError, quote, reason, UsageError, withMessage } from "../errors.ts";
import { callerDirectory, resolvePath } from "../config/resolve_path.ts";
import { type Libc, openLibc } from "../linux/libc.ts";
import { parseReportArgs, REPORT_USAGE, type ReportArgs } from "./args.ts";
import { GeoDatabase } from "./geoip.ts";
import { formatHtmlReport } from "./html.ts";
import { toJsonReport } from "./json.ts";
import { addCounts, LogParser, READ_CHUNK_BYTES } from "./parse.ts";
import {
  type CountingWorker,
  countInWorker,
  MAX_WORKER_SOURCES,
  PARALLEL_MIN_BYTES,
  splitPoint,
  WorkerReadError,
} from "./count_in_worker.ts";
import { ConnectionStats, type Period, summarize } from "./stats.ts";
import { formatCount } from "./table.ts";
import { formatTextReport } from "./text.ts";
import { FALLBACK_ZONE, Zone } from "./zone.ts";
import { type PartialWriter, writeAll } from "../write_all.ts";

/** Inputs that take longer than this show a progress line (on a terminal). */
const PROGRESS_DELAY_MS = 1000;
/** How often the progress line is redrawn. */
const PROGRESS_INTERVAL_MS = 250;
const GZIP_MAGIC = [0x1f, 0x8b];

/** What the report reads and writes; the real entry passes the process's, tests their own. */
export interface ReportOptions {
  /** Writes to standard output. */
  stdout: (text: string) => void | Promise<void>;
  /** Writes to standard error. */
  stderr: (text: string) => void | Promise<void>;
  /** Standard input (read for `-` or when no file is given). */
  stdin: ReadableStream<Uint8Array>;
  /** Whether standard output (colours) and standard error (progress) are terminals. */
  isTerminal: { stdout: boolean; stderr: boolean };
  /** Whether NO_COLOR is set: never colour then. */
  noColor: boolean;
  /** The clock, epoch milliseconds (for `--since 24h`). */
  now: () => number;
  /** IANA time zone of text log lines and of the times shown (default: the system's; UTC if unknown). */
  timeZone?: string;
  /**
   * The directory relative paths (log files, `--geoip`) are resolved against: the caller's under
   * `deno task` (`INIT_CWD`); `null` or unset for the process's own.
   */
  cwd?: string | null;
  /** Gives up the permissions the report does not need; called once the arguments are read. */
  dropPermissions?: () => Promise<void>;
  /**
   * Loads the C library (Linux), for a `--geoip` database opened without blocking and checked on
   * its descriptor; called before {@linkcode ReportOptions.dropPermissions} (it needs `ffi`).
   */
  loadLibc?: () => Libc;
  /**
   * Plain files at least this large are read in two halves at once, the second by a worker
   * (lib/report/count_in_worker.ts); default PARALLEL_MIN_BYTES.
   */
  parallelMinBytes?: number;
  /** The module of that worker (default lib/report/count_worker.ts). */
  workerUrl?: URL;
}

/**
 * Gives up every permission but reading, whatever the program was started or compiled with:
 * the report reads files and standard input and writes standard output, nothing else.
 */
export async function dropReportPermissions(): Promise<void> {
  for (const name of ["net", "ffi", "env", "run", "sys", "write"] as const) {
    await Deno.permissions.revoke({ name });
  }
}

const encoder = new TextEncoder();

/** Writes `text` to a standard stream; a reader that went away ends nothing. */
async function writeText(writer: PartialWriter, text: string): Promise<void> {
  try {
    await writeAll(writer, encoder.encode(text));
  } catch (error) {
    // The reader went away (`net-bouncer report | head`): nobody is left to tell.
    if (!(error instanceof Deno.errors.BrokenPipe)) throw error;
  }
}

/** The options of the real program: its standard streams, clock and permission drop. */
export function denoReportOptions(): ReportOptions {
  return {
    stdout: (text) => writeText(Deno.stdout, text),
    stderr: (text) => writeText(Deno.stderr, text),
    stdin: Deno.stdin.readable,
    isTerminal: { stdout: Deno.stdout.isTerminal(), stderr: Deno.stderr.isTerminal() },
    noColor: Deno.noColor,
    now: Date.now,
    cwd: callerDirectory(),
    dropPermissions: dropReportPermissions,
    loadLibc: Deno.build.os === "linux" ? openLibc : undefined,
  };
}

const NOTHING_READ = { lines: 0, bytes: 0 };

/** Shows how far reading has come, on a terminal, for inputs that take a while. */
class Progress {
  #options: ReportOptions;
  #start: number;
  #next: number;
  #shown = false;

  constructor(options: ReportOptions) {
    this.#options = options;
    this.#start = options.now();
    this.#next = this.#start + PROGRESS_DELAY_MS;
  }

  /** Redraws the line; `other` is what a worker has read of the same input so far. */
  async update(name: string, parser: LogParser, other = NOTHING_READ): Promise<void> {
    if (!this.#options.isTerminal.stderr) return;
    const now = this.#options.now();
    if (now < this.#next) return;
    this.#next = now + PROGRESS_INTERVAL_MS;
    this.#shown = true;
    const rate = (parser.bytes + other.bytes) / 1e6 / ((now - this.#start) / 1000);
    await this.#options.stderr(
      `\r\x1b[Kreading ${name}: ${formatCount(parser.counts.lines + other.lines)} lines, ` +
        `${rate.toFixed(1)} MB/s`,
    );
  }

  async clear(): Promise<void> {
    if (this.#shown) await this.#options.stderr("\r\x1b[K");
    this.#shown = false;
  }
}

/** A stream that yields `first` and then the rest of `reader`. */
function prepend(
  first: Uint8Array,
  reader: ReadableStreamDefaultReader<Uint8Array>,
): ReadableStream<Uint8Array> {
  let sent = false;
  return new ReadableStream({
    async pull(controller) {
      if (!sent) {
        sent = true;
        controller.enqueue(first);
        return;
      }
      const { done, value } = await reader.read();
      if (done) controller.close();
      else controller.enqueue(value);
    },
    cancel: (why) => reader.cancel(why),
  });
}

/**
 * Reads one input into the parser, decompressing it when it starts with gzip's magic bytes
 * (whatever its name: logrotate names rotated files `.gz`, a pipe has no name).
 */
async function readInput(
  stream: ReadableStream<Uint8Array>,
  options: { name: string; parser: LogParser; progress: Progress },
): Promise<void> {
  const { name, parser, progress } = options;
  let reader = stream.getReader();
  const read = async () => {
    try {
      return await reader.read();
    } catch (error) {
      // OS errors, and zlib's (Z_DATA_ERROR, ...: they have a code too).
      if (isOsError(error)) throw withMessage(error, `Cannot read ${name}: ${reason(error)}`);
      throw error;
    }
  };
  let first = new Uint8Array(0);
  // Two bytes tell gzip; a pipe may deliver fewer in its first chunk.
  while (first.length < GZIP_MAGIC.length) {
    const { done, value } = await read();
    if (done) break;
    const joined = new Uint8Array(first.length + value.length);
    joined.set(first);
    joined.set(value, first.length);
    first = joined;
  }
  const gzip = first[0] === GZIP_MAGIC[0] && first[1] === GZIP_MAGIC[1];
  if (gzip) {
    // node:zlib, not DecompressionStream: it reads files of several gzip members too
    // (`cat a.gz b.gz`), and faster.
    const gunzip = Duplex.toWeb(createGunzip()) as unknown as TransformStream<
      Uint8Array,
      Uint8Array
    >;
    reader = prepend(first, reader).pipeThrough(gunzip).getReader();
  } else {
    parser.push(first);
  }
  while (true) {
    const result = await read();
    if (result.done) break;
    parser.push(result.value);
    await progress.update(name, parser);
  }
  // A line cut at the end of one file does not continue in the next.
  parser.end();
}

/**
 * Reads a plain file into the parser through one reused buffer of READ_CHUNK_BYTES (the parser
 * keeps no reference to a chunk), so reading allocates nothing per chunk; a gzip file goes
 * through {@linkcode readInput}'s stream. A file of `parallelMinBytes` or more is read in two
 * halves at once: the first here, the second by a worker whose counts are merged.
 */
async function readFile(
  file: Deno.FsFile,
  options: {
    name: string;
    path: string;
    parser: LogParser;
    stats: ConnectionStats;
    progress: Progress;
    zone: Zone;
    period: Period;
    parallelMinBytes: number;
    /** Writes a warning line (`net-bouncer: warning: ...`). */
    warn: (message: string) => Promise<void>;
    workerUrl?: URL;
  },
): Promise<void> {
  const { name, parser, progress } = options;
  const buffer = new Uint8Array(READ_CHUNK_BYTES);
  const fail = (error: unknown): never => {
    if (error instanceof WorkerReadError) {
      throw new Error(`Cannot read ${name}: ${error.message}`, { cause: error });
    }
    if (!isOsError(error)) throw error;
    throw withMessage(error, `Cannot read ${name}: ${reason(error)}`);
  };
  const read = async () => {
    try {
      return await file.read(buffer);
    } catch (error) {
      return fail(error);
    }
  };
  let n = await read();
  if (n !== null && n >= 2 && buffer[0] === GZIP_MAGIC[0] && buffer[1] === GZIP_MAGIC[1]) {
    await file.seek(0, Deno.SeekMode.Start);
    await readInput(file.readable, options);
    return;
  }
  // The bytes this thread reads: all, or up to where the worker starts.
  let end = Infinity;
  let worker: CountingWorker | null = null;
  const other = { lines: 0, bytes: 0 };
  const { size } = await file.stat();
  if (n !== null && size >= options.parallelMinBytes) {
    const split = await splitPoint(file, size).catch(fail);
    await file.seek(n, Deno.SeekMode.Start);
    if (split !== null) {
      end = split;
      worker = countInWorker(
        {
          path: options.path,
          start: split,
          zone: options.zone.name,
          period: options.period,
          maxSources: MAX_WORKER_SOURCES,
        },
        {
          onProgress: (lines, bytes) => Object.assign(other, { lines, bytes }),
          url: options.workerUrl,
        },
      );
    }
  }
  let counted = null;
  try {
    let offset = 0;
    while (n !== null && offset < end) {
      const chunk = buffer.subarray(0, Math.min(n, end - offset));
      offset += chunk.length;
      parser.push(chunk);
      await progress.update(name, parser, other);
      if (offset < end) n = await read();
    }
    counted = worker === null ? null : await worker.counts.catch(fail);
    if (counted?.failure) {
      await options.warn(`The report's second thread failed (${counted.failure}): reading on one`);
    }
    if (counted !== null && counted.stoppedAt !== null) {
      // The worker stopped (too many sources): the lines after it are read here.
      await file.seek(counted.stoppedAt, Deno.SeekMode.Start);
      for (n = await read(); n !== null; n = await read()) {
        parser.push(buffer.subarray(0, n));
        await progress.update(name, parser, other);
      }
    }
  } finally {
    worker?.terminate();
  }
  parser.end();
  if (counted !== null) {
    options.stats.merge(counted.stats);
    addCounts(parser.counts, counted.counts);
    parser.bytes += counted.bytes;
  }
}

/** Opens a file given on the command line, with a message naming it on failure. */
async function openInput(path: string): Promise<Deno.FsFile> {
  try {
    const file = await Deno.open(path);
    if ((await file.stat()).isDirectory) {
      file.close();
      throw Object.assign(new Deno.errors.IsADirectory("is a directory"), { code: "EISDIR" });
    }
    return file;
  } catch (error) {
    if (!isOsError(error)) throw error;
    throw withMessage(error, `Cannot open log file "${path}": ${reason(error)}`);
  }
}

async function run(
  parsed: ReportArgs,
  options: ReportOptions & { zone: Zone; libc: Libc | undefined },
): Promise<void> {
  const { zone, libc } = options;
  const geo = parsed.geoip === null ? undefined : await GeoDatabase.open(parsed.geoip, { libc });
  const period = { since: parsed.since, until: parsed.until };
  const stats = new ConnectionStats(period);
  const parser = new LogParser(stats, zone);
  const progress = new Progress(options);
  const inputs = parsed.files.length === 0 ? ["-"] : parsed.files;
  // Open every file first: a missing one fails at once, not after reading the others.
  const files: (Deno.FsFile | null)[] = [];
  try {
    for (const path of inputs) files.push(path === "-" ? null : await openInput(path));
    for (let i = 0; i < inputs.length; i++) {
      const file = files[i];
      const name = file === null ? "standard input" : `"${inputs[i]}"`;
      if (file === null) await readInput(options.stdin, { name, parser, progress });
      else {
        await readFile(file, {
          name,
          path: inputs[i],
          parser,
          stats,
          progress,
          zone,
          period,
          parallelMinBytes: options.parallelMinBytes ?? PARALLEL_MIN_BYTES,
          warn: async (message) => await options.stderr(`net-bouncer: warning: ${message}\n`),
          workerUrl: options.workerUrl,
        });
      }
    }
  } finally {
    for (const file of files) {
      try {
        file?.close();
      } catch {
        // Already closed by its stream (after a read error).
      }
    }
    await progress.clear();
  }
  const summary = summarize(stats, parser.counts, { zone, top: parsed.top, geo, period });
  let text: string;
  switch (parsed.format) {
    case "json":
      text = JSON.stringify(toJsonReport(summary), null, 2) + "\n";
      break;
    case "html":
      text = formatHtmlReport(summary, {
        countryName: geo === undefined ? undefined : (code) => geo.countryName(code),
      });
      break;
    default:
      text = formatTextReport(summary, {
        color: options.isTerminal.stdout && !options.noColor,
      });
  }
  await options.stdout(text);
}

/** `parsed` with its relative paths resolved against `options.cwd` (see lib/config/resolve_path.ts). */
function resolvePaths(parsed: ReportArgs, options: ReportOptions): ReportArgs {
  const cwd = options.cwd ?? null;
  return {
    ...parsed,
    files: parsed.files.map((path) => resolvePath(path, { cwd })),
    geoip: parsed.geoip === null ? null : resolvePath(parsed.geoip, { cwd }),
  };
}

/** The C library, or `undefined` where it cannot be loaded (the database is opened by Deno). */
function loadLibc(options: ReportOptions): Libc | undefined {
  try {
    return options.loadLibc?.();
  } catch {
    // No libc.so.6 (musl, another system), or no `ffi` permission.
    return undefined;
  }
}

/** Runs `net-bouncer report` with `args` (after `report`); resolves to the exit code. */
export async function report(args: string[], options: ReportOptions): Promise<number> {
  const fail = async (message: string, code: number) => {
    // One line, never a stack trace.
    await options.stderr(`net-bouncer: error: ${message.split("\n")[0]}\n`);
    return code;
  };
  try {
    // Reading the arguments reads no file; they tell whether libc is needed before the drop.
    const zone = new Zone(options.timeZone);
    const parsed = resolvePaths(parseReportArgs(args, { now: options.now(), zone }), options);
    const libc = parsed.geoip === null ? undefined : loadLibc(options);
    await options.dropPermissions?.();
    if (parsed.help) {
      await options.stdout(REPORT_USAGE);
      return 0;
    }
    if (zone.fallback) {
      // Intl knows no such zone (TZ=Foo/Bar); the daemon's Date wrote its lines in UTC then.
      await options.stderr(
        `net-bouncer: warning: Unknown time zone ${
          options.timeZone === undefined ? "(see TZ and /etc/localtime)" : quote(options.timeZone)
        }: times are read and shown in ${FALLBACK_ZONE}\n`,
      );
    }
    await run(parsed, { ...options, zone, libc });
    return 0;
  } catch (error) {
    if (error instanceof UsageError) return await fail(error.message, 2);
    // OS errors carry a message for the user; anything else is a bug, still one line.
    return await fail(error instanceof Error ? error.message : String(error), 1);
  }
}
