/**
 * Socket activation (sd_listen_fds(3)): which inherited descriptors are listening sockets that
 * systemd passed to this process, and their names. No system call: lib/daemon/ checks and
 * serves the descriptors.
 */
import { type Environment, parsePositive, SystemdEnvironmentError, unset } from "./environment.ts";

/** The first descriptor systemd passes (0, 1 and 2 are stdin, stdout and stderr). */
export const SD_LISTEN_FDS_START = 3;
/** The name systemd gives a passed descriptor when `LISTEN_FDNAMES` does not name it. */
export const UNKNOWN_FD_NAME = "unknown";
/** The environment variables of socket activation. */
export const LISTEN_VARIABLES = ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] as const;

/** A descriptor passed by systemd, with its name (`FileDescriptorName=`, or "unknown"). */
export interface ListenFd {
  /** The descriptor number (3, 4, ...). */
  fd: number;
  /** The name from `LISTEN_FDNAMES`. */
  name: string;
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
