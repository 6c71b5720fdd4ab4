/**
 * Paths given on the command line, resolved against the directory the user ran the program
 * from. `deno task` runs tasks in the project's directory and passes the caller's in
 * `INIT_CWD`; a compiled binary runs where it was started, without it.
 */
import { isAbsolute, join } from "node:path";

/** The part of `Deno.env` read here. */
export interface InitCwdSource {
  /** The variable's value, or `undefined`. */
  get(key: string): string | undefined;
}

/** The caller's directory from `INIT_CWD`, or `null` when unset (or not readable). */
export function callerDirectory(env: InitCwdSource = Deno.env): string | null {
  try {
    const value = env.get("INIT_CWD");
    return value !== undefined && isAbsolute(value) ? value : null;
  } catch {
    return null; // without the permission to read it: as if unset
  }
}

/**
 * `path` as the user meant it: a relative path joined to `cwd` (see {@linkcode callerDirectory}),
 * an absolute one, `-` (standard output) or `cwd === null` unchanged.
 */
export function resolvePath(path: string, { cwd }: { cwd: string | null }): string {
  if (cwd === null || path === "-" || path === "" || isAbsolute(path)) return path;
  return join(cwd, path);
}
