/**
 * Files opened through libc so that opening can never block and the check applies to what was
 * opened: open(2) with O_NONBLOCK (a FIFO opens at once, or fails with ENXIO for writing
 * without a reader), then statx(2) on the descriptor. Checking the path first and opening it
 * after is a race: a symbolic link flipped to a FIFO in between hung the daemon on SIGHUP.
 *
 * Calls to loaded symbols need no Deno permission: this works after `ffi`, `read` and `write`
 * are revoked, so a reopen on SIGHUP is not limited by what Deno can still grant.
 */
import {
  AT_EMPTY_PATH,
  ERRNO,
  type Libc,
  O_CLOEXEC,
  O_NOCTTY,
  O_NONBLOCK,
  OsError,
  S_IFDIR,
  S_IFMT,
  S_IFREG,
  STATX_BYTES,
  STATX_TYPE_AND_SIZE,
} from "./libc.ts";

/** What a descriptor refers to: a regular file, a directory, or anything else (FIFO, device). */
export type FileKind = "file" | "directory" | "other";

const encoder = new TextEncoder();
const EMPTY_PATH = new Uint8Array(1);

/** A NUL-terminated path for libc. */
function cPath(path: string): Uint8Array {
  const bytes = encoder.encode(path);
  const buffer = new Uint8Array(bytes.length + 1);
  buffer.set(bytes);
  return buffer;
}

/** An open file of libc's: read, written and closed through the same symbols. */
export class LibcFile {
  /** The descriptor. */
  readonly fd: number;
  #libc: Libc;
  #closed = false;

  /** Wraps the open descriptor `fd`. */
  constructor(libc: Libc, fd: number) {
    this.#libc = libc;
    this.fd = fd;
  }

  /** What the descriptor refers to, and its size in bytes (statx(2)). */
  describe(): { kind: FileKind; size: number } {
    const buffer = new Uint8Array(STATX_BYTES);
    const result = this.#libc.symbols.statx(
      this.fd,
      EMPTY_PATH,
      AT_EMPTY_PATH,
      STATX_TYPE_AND_SIZE,
      buffer,
    );
    if (result === -1) throw new OsError("statx failed", { errno: this.#libc.errno() });
    const view = new DataView(buffer.buffer);
    const type = view.getUint16(28, true) & S_IFMT;
    const size = Number(view.getBigUint64(40, true));
    return { kind: type === S_IFREG ? "file" : type === S_IFDIR ? "directory" : "other", size };
  }

  /** Reads into `buffer`; returns the count, or `null` at the end of the file. */
  readSync(buffer: Uint8Array): number | null {
    const count = Number(this.#libc.symbols.read(this.fd, buffer, BigInt(buffer.length)));
    if (count === -1) throw new OsError("read failed", { errno: this.#libc.errno() });
    return count === 0 ? null : count;
  }

  /** Writes some of `data`; returns how many bytes were written. */
  writeSync(data: Uint8Array): number {
    const count = Number(this.#libc.symbols.write(this.fd, data, BigInt(data.length)));
    if (count === -1) throw new OsError("write failed", { errno: this.#libc.errno() });
    return count;
  }

  /** Closes the descriptor (once). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#libc.symbols.close(this.fd);
  }
}

/**
 * Opens `path` with open(2) `flags` (O_NONBLOCK, O_CLOEXEC and O_NOCTTY added) and `mode`,
 * without blocking whatever is at the path.
 *
 * @throws {OsError} with the errno of a failed open.
 */
export function openFile(libc: Libc, path: string, flags: number, mode = 0): LibcFile {
  const fd = libc.symbols.open(cPath(path), flags | O_NONBLOCK | O_CLOEXEC | O_NOCTTY, mode);
  if (fd === -1) throw new OsError(`Cannot open "${path}"`, { errno: libc.errno() });
  return new LibcFile(libc, fd);
}

/**
 * Opens `path` with `flags` and keeps it only if it is a regular file; returns it with its size.
 *
 * @throws {OsError} with the errno of a failed open, `EISDIR` for a directory, or `ENXIO`
 *   ("not a regular file" to {@linkcode isNotRegular}) for anything else.
 */
export function openRegularFile(
  libc: Libc,
  path: string,
  flags: number,
  mode = 0,
): { file: LibcFile; size: number } {
  const file = openFile(libc, path, flags, mode);
  try {
    const { kind, size } = file.describe();
    if (kind === "directory") throw new OsError("is a directory", { errno: ERRNO.EISDIR });
    if (kind === "other") throw new OsError("not a regular file", { errno: ERRNO.ENXIO });
    return { file, size };
  } catch (error) {
    file.close();
    throw error;
  }
}

/**
 * Whether `error` says the path is not a regular file: what {@linkcode openRegularFile} found,
 * or ENXIO from open(2) itself (a FIFO without a reader, opened for writing).
 */
export function isNotRegular(error: unknown): boolean {
  return error instanceof OsError && error.errno === ERRNO.ENXIO;
}
