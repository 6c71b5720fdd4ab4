/** One sink for the listener tests: it keeps the addresses it is given. */
import type { ConnectionSink } from "../../lib/daemon/listener_set.ts";
import { addressText } from "../../lib/daemon/client_address.ts";

/** A sink that keeps the addresses of the connections it is given, as text. */
export function collectingSink(): ConnectionSink & { addresses: string[] } {
  const addresses: string[] = [];
  return {
    addresses,
    connection: (address) => addresses.push(addressText(address)),
    dropped: () => {},
    reset: () => {},
    acceptFailed: () => {},
    flush: () => {},
  };
}
