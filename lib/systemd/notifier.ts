/**
 * Readiness and watchdog messages to the service manager (sd_notify(3)): the address of
 * `NOTIFY_SOCKET`, the text of a message, the watchdog interval (sd_watchdog_enabled(3)), and a
 * notifier that never blocks or throws: a failed send is counted and reported, rate-limited, and
 * the daemon goes on (a manager that went away must not stop it). Sending a datagram is injected
 * ({@linkcode DatagramSender}): lib/linux/libc.ts implements it, tests pass a fake.
 */
import { AF_UNIX } from "../linux/libc.ts";
import { reason } from "../errors.ts";
import { Throttle } from "../log/throttle.ts";
import { type Environment, parsePositive, SystemdEnvironmentError, unset } from "./environment.ts";

/** Longest socket name (`sun_path` is 108 bytes, one of them a NUL). */
export const MAX_SOCKET_PATH_BYTES = 107;
/** The environment variables of sd_notify and the watchdog. */
export const NOTIFY_VARIABLES = ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"] as const;
/** The longest interval a timer takes, in milliseconds (a longer one fires after 1 ms). */
export const MAX_TIMER_MS = 2 ** 31 - 1;
/** The shortest interval between two reports of failing notifications, in milliseconds. */
export const NOTIFY_ERROR_REPORT_INTERVAL_MS = 60_000;

/** Sends one datagram on an `AF_UNIX` socket of the caller's, without blocking. */
export interface DatagramSender {
  /**
   * Sends `message` to the encoded `sockaddr_un` in `address`; throws on failure, with the
   * errno name as `code` (`EAGAIN` when the receiver's queue is full).
   */
  sendDatagram(address: Uint8Array, message: Uint8Array): void;
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
  // Half the timeout, in whole milliseconds, at least 1 and at most what a timer takes.
  return Math.min(MAX_TIMER_MS, Math.max(1, Math.floor(value / 2_000)));
}

/** Sends sd_notify(3) messages to the service manager. */
export interface Notifier {
  /**
   * Sends `fields` as one message (e.g. `{ READY: "1" }`) without blocking; returns whether it
   * was sent. Never throws: a failure (the manager went away, its queue is full) is reported.
   */
  notify(fields: Record<string, string>): boolean;
  /** The watchdog's ping interval in milliseconds, or `null` when there is no watchdog. */
  readonly watchdogIntervalMs: number | null;
}

/** Options of {@linkcode createNotifier}. */
export interface NotifierOptions {
  /** This process's id, to match `WATCHDOG_PID`. */
  pid: number;
  /** Receives one-line reports of failed and resumed sends (rate-limited). */
  report: (message: string) => void;
  /** Monotonic milliseconds that space the reports (default `performance.now`). */
  clock?: () => number;
}

/** What a failed send means, for its report. */
function failureOf(error: unknown, fields: Record<string, string>): string {
  const what = Object.keys(fields).map((key) => `${key}=${fields[key]}`).join(" ");
  const code = (error as { code?: unknown }).code;
  if (code === "EAGAIN") return `its queue is full, ${what} dropped`;
  return `${reason(error)}, ${what} not sent`;
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
  { pid, report, clock }: NotifierOptions,
): Notifier | null {
  const socket = env.get("NOTIFY_SOCKET");
  env.delete("NOTIFY_SOCKET");
  const watchdogIntervalMs = takeWatchdogInterval(env, { pid });
  if (socket === undefined) return null;
  const address = encodeNotifyAddress(socket);
  const { sendDatagram } = typeof sender === "function" ? sender() : sender;
  const failures = new Throttle(NOTIFY_ERROR_REPORT_INTERVAL_MS, { clock });
  return {
    watchdogIntervalMs,
    notify: (fields) => {
      const message = notifyMessage(fields);
      try {
        sendDatagram(address, message);
      } catch (error) {
        const count = failures.fail();
        if (count !== null) {
          report(
            `Cannot notify the service manager: ${failureOf(error, fields)} ` +
              `(${count} failed since the last report)`,
          );
        }
        return false;
      }
      if (failures.open) {
        const count = failures.recover();
        if (count !== null) {
          report(
            `Notifying the service manager again (${count} more failed since the last report)`,
          );
        }
      }
      return true;
    },
  };
}
