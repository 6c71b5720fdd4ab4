/** The portable listener (`Deno.listen`): stopping drains the queues in bounded time. */
import assert from "node:assert/strict";
import { PortableListeners } from "../../lib/daemon/portable_listener.ts";
import { collectingSink } from "./_collecting_sink.ts";
import { waitFor } from "../_util.ts";

Deno.test("PortableListeners: a client every 30 ms cannot hold a stop; what came is logged", async () => {
  const listeners = new PortableListeners({ drain: { idleMs: 50, maxMs: 500 } });
  const port = listeners.bind("127.0.0.1", 0, { v6only: false });
  const sink = collectingSink();
  let finished = false;
  const served = listeners.serve(sink).then(() => finished = true);
  let knocking = true;
  let sent = 0;
  const clients = (async () => {
    while (knocking) {
      try {
        (await Deno.connect({ hostname: "127.0.0.1", port })).close();
        sent++;
      } catch {
        // Refused once the listener is closed.
      }
      await new Promise((resolve) => setTimeout(resolve, 30));
    }
  })();
  try {
    await waitFor("a first connection", () => sink.addresses.length > 0);
    listeners.close();
    // Before: a listener closed only after 50 ms without a connection, never while they came.
    await waitFor("serve() to end while clients keep coming", () => finished, {
      timeoutMs: 3_000,
    });
  } finally {
    knocking = false;
    await clients;
    listeners.close();
    await served;
  }
  assert.ok(sink.addresses.length >= 1 && sink.addresses.length <= sent);
  assert.ok(sink.addresses.every((address) => address === "127.0.0.1"));
});

Deno.test("PortableListeners hands on IPv4-mapped clients as IPv4 bytes", async () => {
  const listeners = new PortableListeners();
  const port = listeners.bind("::", 0, { v6only: false });
  const sink = collectingSink();
  const served = listeners.serve(sink);
  try {
    (await Deno.connect({ hostname: "127.0.0.1", port })).close();
    (await Deno.connect({ hostname: "::1", port })).close();
    await waitFor("two connections", () => sink.addresses.length === 2);
  } finally {
    listeners.close();
    await served;
  }
  assert.deepEqual(sink.addresses.sort(), ["127.0.0.1", "::1"]);
});
