/**
 * The systemd service protocols, without any system call: socket activation (sd_listen_fds(3):
 * which inherited descriptors are listening sockets), readiness and watchdog messages
 * (sd_notify(3): their text and the address of `NOTIFY_SOCKET`), and the watchdog interval
 * (sd_watchdog_enabled(3)). Sending a datagram is injected ({@linkcode DatagramSender}), so the
 * caller implements it with libc and tests with a fake.
 */

/** The first descriptor systemd passes (0, 1 and 2 are stdin, stdout and stderr). */
export const SD_LISTEN_FDS_START = 3;
/** The name systemd gives a passed descriptor when `LISTEN_FDNAMES` does not name it. */
export const UNKNOWN_FD_NAME = "unknown";
/** Longest socket name (`sun_path` is 108 bytes, one of them a NUL). */
export const MAX_SOCKET_PATH_BYTES = 107;
/** The `AF_UNIX` address family (host byte order in `sockaddr_un`). */
export const AF_UNIX = 1;

/** The environment variables of socket activation. */
export const LISTEN_VARIABLES = ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] as const;
/** The environment variables of sd_notify and the watchdog. */
export const NOTIFY_VARIABLES = ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"] as const;

/** The part of `Deno.env` these functions use (tests pass a Map-backed fake). */
export interface Environment {
  /** The variable's value, or `undefined` when unset. */
  get(key: string): string | undefined;
  /** Unsets the variable. */
  delete(key: string): void;
}

/** Sends one datagram on an `AF_UNIX` socket of the caller's (implemented with libc). */
export interface DatagramSender {
  /** Sends `message` to the encoded `sockaddr_un` in `address`; throws on failure. */
  sendDatagram(address: Uint8Array, message: Uint8Array): void;
}

/** A descriptor passed by systemd, with its name (`FileDescriptorName=`, or "unknown"). */
export interface ListenFd {
  /** The descriptor number (3, 4, ...). */
  fd: number;
  /** The name from `LISTEN_FDNAMES`. */
  name: string;
}

/** Environment variables from systemd that cannot be what systemd sets: the program exits 1. */
export class SystemdEnvironmentError extends Error {
  /** Creates the error with a message for the admin. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "SystemdEnvironmentError";
  }
}

/** A positive decimal integer without sign or leading junk, or `null`. */
function parsePositive(text: string): number | null {
  if (!/^[0-9]+$/.test(text)) return null;
  const value = Number(text);
  return Number.isSafeInteger(value) && value > 0 ? value : null;
}

function unset(env: Environment, names: readonly string[]): void {
  for (const name of names) env.delete(name);
}

/**
 * The listening sockets systemd passed to this process (sd_listen_fds_with_names(3)), or `null`
 * when none were passed to it: `LISTEN_PID` is unset or names another process (the variables
 * were inherited from a parent that was activated). `LISTEN_PID`, `LISTEN_FDS` and
 * `LISTEN_FDNAMES` are unset in every case, so no child could take the sockets for its own.
 *
 * @throws {SystemdEnvironmentError} when the variables are for this process but malformed.
 */
export function takeListenFds(env: Environment, { pid }: { pid: number }): ListenFd[] | null {
  const listenPid = env.get("LISTEN_PID");
  const count = env.get("LISTEN_FDS");
  const names = env.get("LISTEN_FDNAMES");
  unset(env, LISTEN_VARIABLES);
  if (listenPid === undefined) return null;
  const target = parsePositive(listenPid);
  if (target === null) {
    throw new SystemdEnvironmentError(`Invalid LISTEN_PID "${listenPid}": not a process id`);
  }
  if (target !== pid) return null;
  if (count === undefined) return null;
  const n = parsePositive(count);
  if (n === null) {
    throw new SystemdEnvironmentError(`Invalid LISTEN_FDS "${count}": not a positive count`);
  }
  // systemd separates the names with ":"; without the variable every socket is "unknown".
  const fdNames = names === undefined ? Array(n).fill(UNKNOWN_FD_NAME) : names.split(":");
  if (fdNames.length !== n) {
    throw new SystemdEnvironmentError(
      `Invalid LISTEN_FDNAMES "${names}": ${fdNames.length} names for ${n} sockets`,
    );
  }
  return fdNames.map((name, i) => ({ fd: SD_LISTEN_FDS_START + i, name }));
}

/**
 * Encodes `NOTIFY_SOCKET` as a `struct sockaddr_un` for sendto(2), with its exact length: a
 * path (`/run/systemd/notify`, NUL-terminated) or an abstract name (`@name`: a leading NUL
 * byte, no terminator).
 *
 * @throws {SystemdEnvironmentError} when it is neither, or too long.
 */
export function encodeNotifyAddress(value: string): Uint8Array {
  const abstract = value.startsWith("@");
  if (!abstract && !value.startsWith("/")) {
    throw new SystemdEnvironmentError(
      `Invalid NOTIFY_SOCKET "${value}": neither an absolute path nor an abstract name`,
    );
  }
  const name = new TextEncoder().encode(abstract ? value.slice(1) : value);
  // Either way one byte of sun_path is a NUL (before an abstract name, after a path).
  if (name.length === 0 || name.length > MAX_SOCKET_PATH_BYTES) {
    throw new SystemdEnvironmentError(
      `Invalid NOTIFY_SOCKET "${value}": ${name.length} bytes (1 to ${MAX_SOCKET_PATH_BYTES} allowed)`,
    );
  }
  // sa_family (2 bytes), then sun_path: abstract = NUL + name, path = name + NUL.
  const address = new Uint8Array(2 + 1 + name.length);
  new DataView(address.buffer).setUint16(0, AF_UNIX, true);
  address.set(name, abstract ? 3 : 2);
  return address;
}

/**
 * One sd_notify(3) message: `KEY=value` lines, e.g. `{ READY: "1", STATUS: "Listening" }`.
 *
 * @throws {RangeError} when a key is not upper-case letters, digits and `_`, or a value holds a
 *   newline (it would start another assignment).
 */
export function notifyMessage(fields: Record<string, string>): Uint8Array {
  const lines = Object.entries(fields).map(([key, value]) => {
    if (!/^[A-Z][A-Z0-9_]*$/.test(key)) throw new RangeError(`Invalid notify key "${key}"`);
    if (value.includes("\n")) throw new RangeError(`Invalid notify value for "${key}": newline`);
    return `${key}=${value}`;
  });
  return new TextEncoder().encode(lines.join("\n") + "\n");
}

/**
 * The watchdog's ping interval in milliseconds (half of `WATCHDOG_USEC`, as sd_watchdog_enabled(3)
 * recommends), or `null` when no watchdog is set for this process (`WATCHDOG_PID` names
 * another). Both variables are unset.
 *
 * @throws {SystemdEnvironmentError} when the variables are for this process but malformed.
 */
export function takeWatchdogInterval(env: Environment, { pid }: { pid: number }): number | null {
  const usec = env.get("WATCHDOG_USEC");
  const watchdogPid = env.get("WATCHDOG_PID");
  unset(env, ["WATCHDOG_USEC", "WATCHDOG_PID"]);
  if (usec === undefined) return null;
  if (watchdogPid !== undefined) {
    const target = parsePositive(watchdogPid);
    if (target === null) {
      throw new SystemdEnvironmentError(`Invalid WATCHDOG_PID "${watchdogPid}": not a process id`);
    }
    if (target !== pid) return null;
  }
  const value = parsePositive(usec);
  if (value === null) {
    throw new SystemdEnvironmentError(`Invalid WATCHDOG_USEC "${usec}": not a positive duration`);
  }
  // Half the timeout, in whole milliseconds, at least 1.
  return Math.max(1, Math.floor(value / 2_000));
}

/** Sends sd_notify(3) messages to the service manager. */
export interface Notifier {
  /** Sends `fields` as one message (e.g. `{ READY: "1" }`); throws if the send fails. */
  notify(fields: Record<string, string>): void;
  /** The watchdog's ping interval in milliseconds, or `null` when there is no watchdog. */
  readonly watchdogIntervalMs: number | null;
}

/**
 * A notifier for this process, or `null` when it does not run under a service manager that
 * listens (`NOTIFY_SOCKET` unset). Reads and unsets `NOTIFY_SOCKET`, `WATCHDOG_USEC` and
 * `WATCHDOG_PID`; `sender` sends the datagrams. Pass a function to make the sender only when
 * there is a socket to notify: a unit without `Type=notify` may forbid `AF_UNIX` sockets.
 *
 * @throws {SystemdEnvironmentError} when a variable is malformed.
 */
export function createNotifier(
  env: Environment,
  sender: DatagramSender | (() => DatagramSender),
  { pid }: { pid: number },
): Notifier | null {
  const socket = env.get("NOTIFY_SOCKET");
  env.delete("NOTIFY_SOCKET");
  const watchdogIntervalMs = takeWatchdogInterval(env, { pid });
  if (socket === undefined) return null;
  const address = encodeNotifyAddress(socket);
  const { sendDatagram } = typeof sender === "function" ? sender() : sender;
  return {
    watchdogIntervalMs,
    notify: (fields) => sendDatagram(address, notifyMessage(fields)),
  };
}
