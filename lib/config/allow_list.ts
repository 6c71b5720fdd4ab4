/** The allow-list: `--ignore CIDR` values and `--ignore-file FILE` lines. */
import { PrefixSet } from "./prefix_set.ts";
import { escapeControls, isOsError, quote, reason, UsageError } from "../errors.ts";

/**
 * The largest `--ignore-file` read, in bytes. A bigger file is refused: read whole, it would
 * take memory without bound (a 700 MB file made the string allocation itself fail).
 */
export const MAX_IGNORE_FILE_BYTES = 16 * 1024 * 1024;
/** How much of the file one read takes, in bytes. */
const READ_CHUNK_BYTES = 64 * 1024;

function cannotRead(file: string, why: string, cause?: unknown): UsageError {
  return new UsageError(`Cannot read ignore file ${quote(file)}: ${why}`, { cause });
}

function tooLarge(file: string): UsageError {
  return cannotRead(file, `larger than ${MAX_IGNORE_FILE_BYTES / 1024 / 1024} MiB`);
}

function checkFileInfo(file: string, info: Deno.FileInfo): void {
  if (info.isDirectory) throw cannotRead(file, "is a directory");
  if (!info.isFile) throw cannotRead(file, "not a regular file");
  if (info.size > MAX_IGNORE_FILE_BYTES) throw tooLarge(file);
}

/**
 * Reads the ignore file, at most {@linkcode MAX_IGNORE_FILE_BYTES}. Only a regular file is
 * opened: what is at the path is looked at first, since opening a FIFO blocks until a writer
 * comes, and the open file is checked again.
 */
function readIgnoreFile(file: string): string {
  let handle: Deno.FsFile;
  try {
    checkFileInfo(file, Deno.statSync(file));
    handle = Deno.openSync(file, { read: true });
  } catch (error) {
    if (!isOsError(error)) throw error;
    throw cannotRead(file, reason(error), error);
  }
  try {
    checkFileInfo(file, handle.statSync());
    // The file may grow while it is read: stop one byte past the limit.
    const chunks: Uint8Array[] = [];
    let total = 0;
    while (total <= MAX_IGNORE_FILE_BYTES) {
      const chunk = new Uint8Array(READ_CHUNK_BYTES);
      const count = handle.readSync(chunk);
      if (count === null) break;
      chunks.push(chunk.subarray(0, count));
      total += count;
    }
    if (total > MAX_IGNORE_FILE_BYTES) throw tooLarge(file);
    const bytes = new Uint8Array(total);
    let offset = 0;
    for (const chunk of chunks) {
      bytes.set(chunk, offset);
      offset += chunk.length;
    }
    return new TextDecoder().decode(bytes);
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

/**
 * Builds the allow-list from CIDR values and the lines of an optional file (`#` starts a
 * comment; blank lines are skipped). At start-up the error means exit 2; on SIGHUP the caller
 * logs it and keeps the previous list.
 *
 * @throws {UsageError} on a bad entry (naming the file and line), or a file that cannot be read,
 * is not a regular file or is larger than {@linkcode MAX_IGNORE_FILE_BYTES} (naming the file).
 */
export function loadIgnoreList(
  cidrs: readonly string[],
  options: { file?: string | null } = {},
): PrefixSet {
  const set = new PrefixSet();
  for (const cidr of cidrs) {
    try {
      set.add(cidr);
    } catch (error) {
      if (!(error instanceof RangeError)) throw error;
      throw new UsageError(`Cannot ignore ${quote(cidr)}: ${whyNot(error)}`, { cause: error });
    }
  }
  const file = options.file;
  if (file === null || file === undefined) return set;
  const lines = readIgnoreFile(file).split("\n");
  for (let index = 0; index < lines.length; index++) {
    const entry = lines[index].replace(/#.*/, "").trim();
    if (entry === "") continue;
    try {
      set.add(entry);
    } catch (error) {
      if (!(error instanceof RangeError)) throw error;
      throw new UsageError(
        `Cannot ignore ${quote(entry)} in ${quote(file)} line ${index + 1}: ${whyNot(error)}`,
        { cause: error },
      );
    }
  }
  return set;
}
