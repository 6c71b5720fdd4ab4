/** Bouncer with a fake listener set: binding plans, fallbacks, reports and the allow-list. */
import assert from "node:assert/strict";
import { Bouncer } from "../../lib/daemon/bouncer.ts";
import type { Family } from "../../lib/config/cli.ts";
import { EventLog } from "../../lib/log/event_log.ts";
import { createFormatter } from "../../lib/log/format.ts";
import type { ListenerSet } from "../../lib/daemon/listener_set.ts";
import { addressBytes } from "../../lib/daemon/client_address.ts";
import { FakeListeners } from "./_fake_listeners.ts";
import { PrefixSet } from "../../lib/config/prefix_set.ts";

function osError(code: string, message: string): Error {
  return Object.assign(new Error(message), { code });
}

/** A Bouncer on `listeners` whose lines and events are collected as JSON. */
function bouncerOn(
  listeners: ListenerSet,
  options: {
    family?: Family;
    addresses?: string[];
    allowList?: PrefixSet;
    monotonic?: () => number;
  } = {},
) {
  const lines: string[] = [];
  const formatter = createFormatter("json");
  const writer = {
    write: (line: string) => lines.push(line),
    writeBytes: (line: Uint8Array) => lines.push(new TextDecoder().decode(line)),
  };
  const server = new Bouncer(listeners, writer, {
    formatter,
    log: new EventLog(writer, formatter),
    family: options.family,
    addresses: options.addresses,
    allowList: options.allowList,
    monotonicClock: options.monotonic,
  });
  const events = () =>
    lines.join("").trimEnd().split("\n").filter(Boolean).map((line) => JSON.parse(line));
  return { server, events };
}

Deno.test("Bouncer binds one dual-stack socket per port where the listeners can set IPV6_V6ONLY", () => {
  const listeners = new FakeListeners(true);
  const { server, events } = bouncerOn(listeners);
  server.listen([22, 23]);
  assert.deepEqual(listeners.binds, [
    { hostname: "::", port: 22, v6only: false },
    { hostname: "::", port: 23, v6only: false },
  ]);
  assert.deepEqual(events().map((e) => e.message), [
    "Listening on port 22 (IPv4 and IPv6, any address)",
    "Listening on port 23 (IPv4 and IPv6, any address)",
  ]);
});

Deno.test("Bouncer adds an IPv4 socket where '::' may not take IPv4 (portable: bindv6only, Windows)", () => {
  // On a dual-stack host the second bind finds the port taken: that is fine.
  const dual = new FakeListeners(
    false,
    (hostname) => hostname === "0.0.0.0" ? osError("EADDRINUSE", "Address in use") : null,
  );
  bouncerOn(dual).server.listen([0]);
  assert.deepEqual(dual.binds, [{ hostname: "::", port: 0, v6only: false }]);
  // Where "::" is IPv6-only, the IPv4 socket binds the port "::" got.
  const split = new FakeListeners(false);
  const { server, events } = bouncerOn(split);
  server.listen([0]);
  assert.deepEqual(split.binds.map((b) => `${b.hostname} ${b.port}`), [":: 0", "0.0.0.0 40001"]);
  assert.equal(events().length, 1, "the port is announced once");
});

Deno.test("Bouncer: -6 and -b with both families make '::' IPv6-only", () => {
  const six = new FakeListeners(true);
  bouncerOn(six, { family: "ipv6" }).server.listen([22]);
  assert.deepEqual(six.binds, [{ hostname: "::", port: 22, v6only: true }]);
  const both = new FakeListeners(true);
  bouncerOn(both, { addresses: ["0.0.0.0", "::"] }).server.listen([22]);
  assert.deepEqual(both.binds.map((b) => b.v6only), [true, true]);
  const v6only = new FakeListeners(true);
  bouncerOn(v6only, { addresses: ["::"] }).server.listen([22]);
  assert.deepEqual(v6only.binds.map((b) => b.v6only), [false], "'::' alone takes both families");
});

Deno.test("Bouncer falls back to IPv4 when the host has no IPv6, and says so once", () => {
  const listeners = new FakeListeners(
    true,
    (hostname) =>
      hostname === "::" ? osError("EAFNOSUPPORT", "Address family not supported") : null,
  );
  const { server, events } = bouncerOn(listeners);
  server.listen([22, 23]);
  assert.deepEqual(listeners.binds.map((b) => `${b.hostname} ${b.port}`), [
    "0.0.0.0 22",
    "0.0.0.0 23",
  ]);
  const warnings = events().filter((e) => e.level === "warning");
  assert.equal(warnings.length, 1);
  assert.match(
    warnings[0].message,
    /^IPv6 is not available on this host \(address family not supported\)/,
  );
});

Deno.test("Bouncer closes what it bound when a later port fails, naming that port", () => {
  const listeners = new FakeListeners(
    true,
    (_hostname, port) => port === 23 ? osError("EADDRINUSE", "Address in use") : null,
  );
  const { server, events } = bouncerOn(listeners);
  assert.throws(
    () => server.listen([22, 23]),
    /^Error: Cannot listen on port "23": address already in use$/,
  );
  assert.ok(listeners.closed);
  assert.deepEqual(events(), [], "no Listening line for a port let go again");
});

Deno.test("Bouncer reports resource failures at most once a second with a count; single connections' never", async () => {
  let now = 0;
  const listeners = new FakeListeners(true);
  const { server, events } = bouncerOn(listeners, { monotonic: () => now });
  server.listen([22]);
  const served = server.serve();
  const sink = listeners.sink!;
  sink.acceptFailed({ kind: "resource", code: "EMFILE" }, 22); // reported at once
  for (let i = 0; i < 49; i++) sink.acceptFailed({ kind: "resource", code: "EMFILE" }, 22);
  sink.acceptFailed({ kind: "connection", code: "ECONNABORTED" }, 22);
  now += 1_000;
  sink.acceptFailed({ kind: "resource", code: "EMFILE" }, 22); // the 49 and this one
  sink.connection(addressBytes("192.0.2.1"), 1, 22); // recovery, told at once
  sink.flush();
  server.close();
  await served;
  const reports = events().filter((e) => e.event === "error" || e.event === "accepting");
  assert.deepEqual(reports.map((e) => [e.level, e.message]), [
    ["error", "Cannot accept connections: too many open files (1 failed since the last report)"],
    ["error", "Cannot accept connections: too many open files (50 failed since the last report)"],
    ["info", "Accepting connections again"],
  ]);
  assert.equal(server.acceptErrors, 52);
  assert.equal(server.connections, 1);
});

Deno.test("Bouncer takes one address form (bytes), checks the allow-list on it and writes its text", async () => {
  const allowList = new PrefixSet();
  allowList.add("192.0.2.0/24");
  allowList.add("2001:db8::/32");
  const listeners = new FakeListeners(true);
  const { server, events } = bouncerOn(listeners, { allowList });
  server.listen([22]);
  const served = server.serve();
  const sink = listeners.sink!;
  sink.connection(Uint8Array.of(192, 0, 2, 9), 5, 22);
  sink.connection(Uint8Array.of(198, 51, 100, 1), 5, 22);
  sink.connection(addressBytes("2001:db8::1"), 5, 22);
  sink.connection(addressBytes("2001:db9::1"), 5, 22);
  sink.dropped(22);
  sink.reset(22);
  // The lines of a round of accepts are written together, at its end.
  assert.deepEqual(events().filter((e) => e.event === "connection"), []);
  sink.flush();
  server.close();
  await served;
  const logged = events().filter((e) => e.event === "connection").map((e) => e.src_ip);
  assert.deepEqual(logged, ["198.51.100.1", "2001:db9::1"]);
  assert.equal(server.ignored, 3);
  assert.equal(server.resets, 1);
});
