/** The fake environment of the systemd tests: a Map behind lib/systemd/environment.ts's interface. */
import type { Environment } from "../../lib/systemd/environment.ts";

/** A fake environment with `vars`; `map` shows what is left. */
export function fakeEnv(vars: Record<string, string>): Environment & { map: Map<string, string> } {
  const map = new Map(Object.entries(vars));
  return { map, get: (key) => map.get(key), delete: (key) => void map.delete(key) };
}
