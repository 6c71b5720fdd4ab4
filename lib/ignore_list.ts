/** The allow-list: `--ignore CIDR` values and `--ignore-file FILE` lines. */
import { PrefixSet } from "./ip.ts";
import { isOsError, reason, UsageError } from "./errors.ts";

/**
 * Builds the allow-list from CIDR values and the lines of an optional file (`#` starts a
 * comment; blank lines are skipped).
 *
 * @throws {UsageError} on a bad entry (naming the file and line) or an unreadable file.
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
      throw new UsageError(error.message);
    }
  }
  const file = options.file;
  if (file === null || file === undefined) return set;
  let text: string;
  try {
    text = Deno.readTextFileSync(file);
  } catch (error) {
    if (!isOsError(error)) throw error;
    throw new UsageError(`Cannot read ignore file "${file}": ${reason(error)}`, { cause: error });
  }
  text.split("\n").forEach((line, index) => {
    const entry = line.replace(/#.*/, "").trim();
    if (entry === "") return;
    try {
      set.add(entry);
    } catch (error) {
      if (!(error instanceof RangeError)) throw error;
      throw new UsageError(
        `Cannot ignore "${entry}" in "${file}" line ${index + 1}: not an IP address or CIDR prefix`,
      );
    }
  });
  return set;
}
