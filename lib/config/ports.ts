/**
 * Parsing of `-p` port specifications: `22`, `23,2323`, `8000-8010`, and `0` for one port that
 * the system picks (announced in the Listening line; tests use it so that no port is guessed).
 */
import { quote } from "../errors.ts";

/** The most ports one process listens on. */
export const MAX_PORTS = 1024;
/** The highest TCP port number. */
const MAX_PORT = 65535;

const NUMBER = /^[0-9]{1,5}$/;

function parsePort(text: string, { min = 1 }: { min?: number } = {}): number {
  if (!NUMBER.test(text)) {
    throw new RangeError(`Cannot listen on port ${quote(text)}: not a number`);
  }
  const port = Number(text);
  if (!(port >= min && port <= MAX_PORT)) {
    throw new RangeError(`Cannot listen on port ${quote(text)}: value must be ${min}-${MAX_PORT}`);
  }
  return port;
}

/**
 * Parses port specifications into a sorted list of distinct ports.
 *
 * @throws {RangeError} on a bad value, a descending range or more than {@linkcode MAX_PORTS}.
 */
export function parsePorts(specs: readonly string[]): number[] {
  const ports = new Set<number>();
  for (const spec of specs) {
    for (const item of spec.split(",")) {
      const range = /^([^-]+)-([^-]*)$/.exec(item);
      if (range === null) {
        ports.add(parsePort(item, { min: 0 }));
        continue;
      }
      if (range[2] === "") {
        throw new RangeError(`Cannot listen on ports ${quote(item)}: a range must be FIRST-LAST`);
      }
      const first = parsePort(range[1]);
      const last = parsePort(range[2]);
      if (first > last) {
        throw new RangeError(`Cannot listen on ports ${quote(item)}: range must be ascending`);
      }
      if (last - first + 1 > MAX_PORTS) {
        throw new RangeError(`Cannot listen on ports ${quote(item)}: at most ${MAX_PORTS} ports`);
      }
      for (let port = first; port <= last; port++) ports.add(port);
    }
    if (ports.size > MAX_PORTS) {
      throw new RangeError(`Cannot listen on ${ports.size} ports: at most ${MAX_PORTS} ports`);
    }
  }
  return [...ports].sort((a, b) => a - b);
}
