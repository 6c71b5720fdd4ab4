/**
 * What the systemd protocols share: the environment they read their variables from, the error
 * for variables that cannot be what systemd sets, and the parse of the numbers in them.
 */

/** The part of `Deno.env` the systemd protocols use (tests pass a Map-backed fake). */
export interface Environment {
  /** The variable's value, or `undefined` when unset. */
  get(key: string): string | undefined;
  /** Unsets the variable. */
  delete(key: string): void;
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
export function parsePositive(text: string): number | null {
  if (!/^[0-9]+$/.test(text)) return null;
  const value = Number(text);
  return Number.isSafeInteger(value) && value > 0 ? value : null;
}

/** Unsets every variable in `names`. */
export function unset(env: Environment, names: readonly string[]): void {
  for (const name of names) env.delete(name);
}
