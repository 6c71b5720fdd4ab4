/**
 * What a failed accept means, by its errno name, for every accept loop of the program: the
 * native listener's accept4(2), the portable listener's and the metrics endpoint's `accept()`.
 * One switch, as endlessh sorts them.
 */

/** Errors that say the process or system is out of a resource: report, then back off. */
export const RESOURCE_ERRORS = ["EMFILE", "ENFILE", "ENOBUFS", "ENOMEM"] as const;
/** One of {@linkcode RESOURCE_ERRORS}. */
export type ResourceError = typeof RESOURCE_ERRORS[number];

/** Pause after an accept failed other than for one connection (EMFILE), so it does not spin, in ms. */
export const ACCEPT_ERROR_BACKOFF_MS = 10;

/**
 * How an accept loop handles a failure:
 * `empty`: the queue is empty (wait for the next connection);
 * `interrupted`: a signal interrupted the call (call it again);
 * `connection`: one connection went away before it was accepted (accept the next one at once);
 * `resource`: out of descriptors or memory (report, back off);
 * `other`: anything else (report, back off).
 */
export type AcceptErrorKind = "empty" | "interrupted" | "connection" | "resource" | "other";

/** How a failed accept with errno name `code` (`EMFILE`) is handled. */
export function acceptErrorKind(code: string): AcceptErrorKind {
  switch (code) {
    case "EAGAIN":
    case "EWOULDBLOCK":
      return "empty";
    case "EINTR":
      return "interrupted";
    case "ECONNABORTED":
    case "ECONNRESET":
    case "ENOTCONN": // Deno's getpeername(2) after accept: the client reset first
    case "EPROTO":
    case "ENETDOWN":
    case "ENETUNREACH":
    case "EHOSTUNREACH":
    case "ETIMEDOUT":
    case "EPERM": // a firewall rule refused it
      return "connection";
    default:
      return (RESOURCE_ERRORS as readonly string[]).includes(code) ? "resource" : "other";
  }
}

/** The errno name of a failed `Deno.Listener.accept()`: its `code`, or the one its class stands for. */
export function acceptErrorCode(error: Error): string {
  const code = (error as { code?: unknown }).code;
  if (typeof code === "string") return code;
  if (error instanceof Deno.errors.NotConnected) return "ENOTCONN";
  if (error instanceof Deno.errors.ConnectionAborted) return "ECONNABORTED";
  if (error instanceof Deno.errors.ConnectionReset) return "ECONNRESET";
  if (error instanceof Deno.errors.Interrupted) return "EINTR";
  return error.name;
}

/** Waits {@linkcode ACCEPT_ERROR_BACKOFF_MS}. */
export function backOff(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ACCEPT_ERROR_BACKOFF_MS));
}
