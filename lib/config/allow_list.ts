/**
 * The allow-list: `--ignore CIDR` values and `--ignore-file FILE` lines, read at start-up and
 * again on SIGHUP (then in slices, between which the daemon goes on accepting).
 */
import { PrefixSet } from "./prefix_set.ts";
import { escapeControls, isOsError, quote, reason, UsageError } from "../errors.ts";
import { type Libc, O_RDONLY } from "../linux/libc.ts";
import { isNotRegular, openRegularFile } from "../linux/regular_file.ts";

/**
 * The largest `--ignore-file` read, in bytes. A bigger file is refused: read whole, it would
 * take memory without bound (a 700 MB file made the string allocation itself fail).
 */
export const MAX_IGNORE_FILE_BYTES = 16 * 1024 * 1024;
/** How much of the file one read takes, in bytes. */
const READ_CHUNK_BYTES = 64 * 1024;

/** The error for an allow-list file that cannot be read: exit 2 at start-up. */
export function cannotRead(file: string, why: string, cause?: unknown): UsageError {
  return new UsageError(`Cannot read allow-list file ${quote(file)}: ${why}`, { cause });
}

/** The error for an allow-list file over {@linkcode MAX_IGNORE_FILE_BYTES}. */
export function tooLarge(file: string): UsageError {
  return cannotRead(file, `larger than ${MAX_IGNORE_FILE_BYTES / 1024 / 1024} MiB`);
}

function checkFileInfo(file: string, info: Deno.FileInfo): void {
  if (info.isDirectory) throw cannotRead(file, "is a directory");
  if (!info.isFile) throw cannotRead(file, "not a regular file");
  if (info.size > MAX_IGNORE_FILE_BYTES) throw tooLarge(file);
}

/** An open regular file to read the allow-list from, with its size when it was opened. */
interface OpenFile {
  readSync(buffer: Uint8Array): number | null;
  close(): void;
  size: number;
}

/**
 * Opens the file through libc: without blocking, checked by descriptor (no race between a
 * check and the open, see lib/linux/regular_file.ts).
 */
function openWithLibc(libc: Libc, file: string): OpenFile {
  try {
    const { file: opened, size } = openRegularFile(libc, file, O_RDONLY);
    if (size > MAX_IGNORE_FILE_BYTES) {
      opened.close();
      throw tooLarge(file);
    }
    return { readSync: (buffer) => opened.readSync(buffer), close: () => opened.close(), size };
  } catch (error) {
    if (isNotRegular(error)) throw cannotRead(file, "not a regular file", error);
    if (!isOsError(error)) throw error;
    throw cannotRead(file, reason(error), error);
  }
}

/**
 * Opens the file with Deno's API, which has no O_NONBLOCK: what is at the path is looked at
 * first (opening a FIFO blocks until a writer comes), and the open file is checked again. A
 * FIFO put there between the look and the open still blocks: used only without libc.
 */
function openWithDeno(file: string): OpenFile {
  try {
    checkFileInfo(file, Deno.statSync(file));
    const handle = Deno.openSync(file, { read: true });
    let size: number;
    try {
      const info = handle.statSync();
      checkFileInfo(file, info);
      size = info.size;
    } catch (error) {
      handle.close();
      throw error;
    }
    return { readSync: (buffer) => handle.readSync(buffer), close: () => handle.close(), size };
  } catch (error) {
    if (!isOsError(error)) throw error;
    throw cannotRead(file, reason(error), error);
  }
}

/** Reads the allow-list file, at most {@linkcode MAX_IGNORE_FILE_BYTES}; regular files only. */
function readAllowListFile(file: string, libc: Libc | null): string {
  const handle = libc === null ? openWithDeno(file) : openWithLibc(libc, file);
  try {
    // Room for the size it had, and for growth while it is read up to one byte past the limit.
    let bytes = new Uint8Array(Math.min(handle.size, MAX_IGNORE_FILE_BYTES) + 1);
    let total = 0;
    while (total <= MAX_IGNORE_FILE_BYTES) {
      if (total === bytes.length) {
        const larger = new Uint8Array(Math.min(2 * bytes.length, MAX_IGNORE_FILE_BYTES + 1));
        larger.set(bytes);
        bytes = larger;
      }
      const count = handle.readSync(bytes.subarray(total, total + READ_CHUNK_BYTES));
      if (count === null) break;
      total += count;
    }
    if (total > MAX_IGNORE_FILE_BYTES) throw tooLarge(file);
    return new TextDecoder().decode(bytes.subarray(0, total));
  } catch (error) {
    if (!isOsError(error)) throw error;
    throw cannotRead(file, reason(error), error);
  } finally {
    handle.close();
  }
}

/** The reason in a PrefixSet message (`Cannot ignore "x": reason`), values escaped. */
function whyNot(error: RangeError): string {
  return escapeControls(error.message.slice(error.message.lastIndexOf(": ") + 2));
}

/** How many entries are parsed between two pauses of a reload (about 10 ms without a JIT). */
export const ENTRIES_PER_SLICE = 8_192;

/** Where the allow-list comes from: `--ignore` values and an optional `--ignore-file`. */
export interface AllowListOptions {
  /** The `--ignore-file` path, or `null`. */
  file?: string | null;
  /**
   * Opens the file through libc, which cannot block on a FIFO (default `null`: Deno's API,
   * which checks the path before it opens it).
   */
  libc?: Libc | null;
}

/**
 * Adds the `cidrs` and the file's lines to `set`, pausing (a `yield`) after every
 * {@linkcode ENTRIES_PER_SLICE} entries: the caller decides whether to let the event loop run.
 */
function* parse(
  set: PrefixSet,
  cidrs: readonly string[],
  { file, libc = null }: AllowListOptions,
): Generator<void, PrefixSet> {
  for (const cidr of cidrs) {
    try {
      set.add(cidr);
    } catch (error) {
      if (!(error instanceof RangeError)) throw error;
      throw new UsageError(`Cannot ignore ${quote(cidr)}: ${whyNot(error)}`, { cause: error });
    }
  }
  if (file === null || file === undefined) return set;
  const text = readAllowListFile(file, libc);
  let line = 0;
  let entries = 0;
  for (let start = 0; start < text.length; line++) {
    const newline = text.indexOf("\n", start);
    const end = newline === -1 ? text.length : newline;
    let entry = text.slice(start, end);
    start = end + 1;
    const hash = entry.indexOf("#");
    entry = (hash === -1 ? entry : entry.slice(0, hash)).trim();
    if (entry === "") continue;
    try {
      set.add(entry);
    } catch (error) {
      if (!(error instanceof RangeError)) throw error;
      throw new UsageError(
        `Cannot ignore ${quote(entry)} in ${quote(file)} line ${line + 1}: ${whyNot(error)}`,
        { cause: error },
      );
    }
    if (++entries % ENTRIES_PER_SLICE === 0) yield;
  }
  return set;
}

/**
 * Builds the allow-list from CIDR values and the lines of an optional file (`#` starts a
 * comment; blank lines are skipped), at once: for start-up, where nothing is served yet. The
 * lookup is built too ({@linkcode PrefixSet.prepare}).
 *
 * @throws {UsageError} on a bad entry (naming the file and line), or a file that cannot be read,
 * is not a regular file or is larger than {@linkcode MAX_IGNORE_FILE_BYTES} (naming the file).
 */
export function loadAllowList(
  cidrs: readonly string[],
  options: AllowListOptions = {},
): PrefixSet {
  const steps = parse(new PrefixSet(), cidrs, options);
  for (let step = steps.next();; step = steps.next()) {
    if (step.done) return step.value.prepare();
  }
}

/**
 * The same as {@linkcode loadAllowList}, in slices with a macrotask between them, so that a
 * reload while serving never holds up the accept loop for long: the caller swaps the list in
 * when it is complete (on error the previous list stays). Aborting `signal` gives up.
 *
 * @throws {UsageError} as {@linkcode loadAllowList} does; the signal's reason once aborted.
 */
export async function reloadAllowList(
  cidrs: readonly string[],
  options: AllowListOptions & { signal?: AbortSignal } = {},
): Promise<PrefixSet> {
  const set = new PrefixSet();
  const pause = async () => {
    // A timer, not a microtask: the accept loop's events come in between.
    await new Promise((resolve) => setTimeout(resolve, 0));
    options.signal?.throwIfAborted();
  };
  const steps = parse(set, cidrs, options);
  for (let step = steps.next(); !step.done; step = steps.next()) await pause();
  for (const _ of set.prepareInSlices()) await pause();
  return set;
}
