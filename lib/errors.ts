/** Errors shared by the command line and the daemon, and the wording of messages. */

/** A problem with the command line or its inputs: the program exits with status 2. */
export class UsageError extends Error {
  /** Creates a usage error with a message for the user. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "UsageError";
  }
}

/**
 * A path names something other than a regular file (a FIFO, a device, a socket): opening it
 * could block the program or write where no log belongs. A runtime failure (exit 1).
 */
export class NotRegularFileError extends Error {
  /** Creates the error with a message that names the path. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "NotRegularFileError";
  }
}

/** A runtime failure of the program's own (not an OS error): exit 1. */
export class RuntimeError extends Error {
  /** Creates a runtime error with a message for the user. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "RuntimeError";
  }
}

/** Reasons for common OS error codes, in the words an admin expects. */
const REASONS: Record<string, string> = {
  EACCES: "permission denied",
  EPERM: "operation not permitted",
  ENOENT: "no such file or directory",
  ENOTDIR: "not a directory",
  EISDIR: "is a directory",
  EROFS: "read-only file system",
  ENOSPC: "no space left on device",
  EDQUOT: "disk quota exceeded",
  EIO: "input/output error",
  EMFILE: "too many open files",
  ENFILE: "too many open files in system",
  EADDRINUSE: "address already in use",
  EADDRNOTAVAIL: "address not available on this host",
  EAFNOSUPPORT: "address family not supported",
  ENOBUFS: "no buffer space available",
  ENOMEM: "out of memory",
  ECONNABORTED: "connection aborted",
  EPROTO: "protocol error",
  ENOTSOCK: "not a socket",
  EINVAL: "invalid argument",
  ECONNREFUSED: "connection refused",
  EAGAIN: "resource temporarily unavailable",
  ENXIO: "no such device or address",
  ELOOP: "too many levels of symbolic links",
  EFBIG: "file too large",
  EEXIST: "file exists",
};

/** The reason for an OS error code (`EMFILE`), in the words an admin expects. */
export function reasonOfCode(code: string): string {
  return REASONS[code] ?? code;
}

/** A short, lower-case reason for an error, without Deno's "(os error N)" suffix. */
export function reason(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const code = (error as { code?: unknown }).code;
  if (typeof code === "string" && code in REASONS) return REASONS[code];
  const message = error.message.replace(/ \(os error \d+\).*$/s, "");
  return message.charAt(0).toLowerCase() + message.slice(1);
}

/**
 * Whether `error` comes from the operating system. Deno maps some OS errors to named classes
 * (`Deno.errors.*`) but others, like ENOSPC and EMFILE, only to an `Error` with a `code`.
 */
export function isOsError(error: unknown): error is Error & { code: string } {
  return error instanceof Error &&
    (Object.values(Deno.errors).some((type) => error instanceof type) ||
      typeof (error as { code?: unknown }).code === "string");
}

/**
 * The same kind of error with a message for the user: the class (a `Deno.errors` one, or
 * `Error`) and the OS `code` are kept, so callers can still tell runtime failures from bugs.
 */
export function withMessage<E extends Error>(error: E, message: string): E {
  const Type = error.constructor as new (message: string, options?: ErrorOptions) => E;
  const copy = new Type(message, { cause: error });
  const code = (error as { code?: unknown }).code;
  if (code !== undefined) Object.assign(copy, { code });
  return copy;
}

/**
 * Characters that must not reach a terminal raw: C0 and C1 controls, DEL, line and paragraph
 * separators, and bidirectional overrides (which can make a value read as something else).
 */
// deno-lint-ignore no-control-regex -- matching control characters is the point
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]/g;
const NAMED_CONTROLS: Record<string, string> = { "\n": "\\n", "\r": "\\r", "\t": "\\t" };

/**
 * `text` with every control character written as an escape (`\n`, `\x1b`, `\u{202e}`), so that
 * a message stays on one line and a value cannot drive the terminal.
 */
export function escapeControls(text: string): string {
  return text.replace(CONTROL, (char) => {
    const named = NAMED_CONTROLS[char];
    if (named !== undefined) return named;
    const code = char.charCodeAt(0);
    return code <= 0xff ? `\\x${code.toString(16).padStart(2, "0")}` : `\\u{${code.toString(16)}}`;
  });
}

/**
 * A user's value for a message: in double quotes, control characters escaped (see
 * {@linkcode escapeControls}). Quotes and backslashes stay as they are, so paths read as typed.
 */
export function quote(value: string): string {
  return `"${escapeControls(value)}"`;
}

/** `1 connection`, `2 connections`: a count with its noun. */
export function plural(count: number, noun: string, nouns = `${noun}s`): string {
  return `${count} ${count === 1 ? noun : nouns}`;
}
