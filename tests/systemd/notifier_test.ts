/**
 * lib/systemd/notifier.ts: sd_notify(3) addresses and messages, the watchdog interval, and a
 * notifier that never throws: failed sends are reported, rate-limited. The same protocol under
 * a real systemd: tests/system/systemd_live_test.ts; against a receiver that goes away or never
 * reads: tests/integration/notify_test.ts.
 */
import assert from "node:assert/strict";
import { SystemdEnvironmentError } from "../../lib/systemd/environment.ts";
import {
  createNotifier,
  encodeNotifyAddress,
  MAX_TIMER_MS,
  NOTIFY_ERROR_REPORT_INTERVAL_MS,
  NOTIFY_VARIABLES,
  notifyMessage,
  takeWatchdogInterval,
} from "../../lib/systemd/notifier.ts";
import { OsError } from "../../lib/linux/libc.ts";
import { fakeEnv } from "./_fake_env.ts";

const PID = 4242;
/** Options of a notifier whose reports are dropped. */
const QUIET = { pid: PID, report: () => {} };

Deno.test("systemd notify: a path NOTIFY_SOCKET is a NUL-terminated sockaddr_un", () => {
  const address = encodeNotifyAddress("/run/systemd/notify");
  const path = new TextEncoder().encode("/run/systemd/notify");
  assert.equal(address.length, 2 + path.length + 1);
  assert.deepEqual([...address.subarray(0, 2)], [1, 0]); // AF_UNIX, little-endian
  assert.deepEqual(address.subarray(2, 2 + path.length), path);
  assert.equal(address[address.length - 1], 0);
});

Deno.test("systemd notify: an abstract NOTIFY_SOCKET (@name) starts with a NUL, no terminator", () => {
  const address = encodeNotifyAddress("@/org/freedesktop/systemd1/notify/42");
  const name = new TextEncoder().encode("/org/freedesktop/systemd1/notify/42");
  assert.equal(address.length, 2 + 1 + name.length);
  assert.deepEqual([...address.subarray(0, 3)], [1, 0, 0]);
  assert.deepEqual(address.subarray(3), name);
});

Deno.test("systemd notify: relative, empty and too long NOTIFY_SOCKET values are errors", () => {
  assert.throws(
    () => encodeNotifyAddress("run/notify"),
    /: Invalid NOTIFY_SOCKET "run\/notify": neither/,
  );
  assert.throws(() => encodeNotifyAddress(""), SystemdEnvironmentError);
  assert.throws(() => encodeNotifyAddress("@"), /0 bytes \(1 to 107 allowed\)/);
  // 107 bytes fit (with the NUL: sun_path's 108), 108 do not.
  assert.equal(encodeNotifyAddress("/" + "a".repeat(106)).length, 2 + 107 + 1);
  assert.throws(() => encodeNotifyAddress("/" + "a".repeat(107)), /108 bytes/);
  assert.equal(encodeNotifyAddress("@" + "a".repeat(107)).length, 2 + 1 + 107);
});

Deno.test("systemd notify: messages are KEY=value lines; a newline in a value is refused", () => {
  const text = new TextDecoder().decode(notifyMessage({ READY: "1", STATUS: "Listening on 22" }));
  assert.equal(text, "READY=1\nSTATUS=Listening on 22\n");
  assert.throws(() => notifyMessage({ STATUS: "a\nREADY=1" }), RangeError);
  assert.throws(() => notifyMessage({ "ready": "1" }), /Invalid notify key "ready"/);
});

Deno.test("systemd watchdog: the ping interval is half of WATCHDOG_USEC, for this process", () => {
  const env = fakeEnv({ WATCHDOG_USEC: "10000000", WATCHDOG_PID: String(PID) });
  assert.equal(takeWatchdogInterval(env, { pid: PID }), 5_000);
  assert.equal(env.map.size, 0);
  // Without WATCHDOG_PID the watchdog is this process's.
  assert.equal(takeWatchdogInterval(fakeEnv({ WATCHDOG_USEC: "3000" }), { pid: PID }), 1);
  const other = fakeEnv({ WATCHDOG_USEC: "10000000", WATCHDOG_PID: String(PID + 1) });
  assert.equal(takeWatchdogInterval(other, { pid: PID }), null);
  assert.equal(takeWatchdogInterval(fakeEnv({}), { pid: PID }), null);
  assert.throws(
    () => takeWatchdogInterval(fakeEnv({ WATCHDOG_USEC: "10s" }), { pid: PID }),
    /: Invalid WATCHDOG_USEC "10s": not a positive duration$/,
  );
});

Deno.test("systemd notify: the notifier sends each message to NOTIFY_SOCKET's address", () => {
  const sent: [number[], string][] = [];
  const sender = {
    sendDatagram: (address: Uint8Array, message: Uint8Array) =>
      void sent.push([[...address], new TextDecoder().decode(message)]),
  };
  const env = fakeEnv({ NOTIFY_SOCKET: "/run/systemd/notify", WATCHDOG_USEC: "20000000" });
  const notifier = createNotifier(env, sender, QUIET);
  assert.ok(notifier);
  assert.equal(notifier.watchdogIntervalMs, 10_000);
  for (const name of NOTIFY_VARIABLES) assert.equal(env.map.has(name), false, name);
  notifier.notify({ READY: "1" });
  notifier.notify({ WATCHDOG: "1" });
  const address = [...encodeNotifyAddress("/run/systemd/notify")];
  assert.deepEqual(sent, [[address, "READY=1\n"], [address, "WATCHDOG=1\n"]]);
  // Not under a service manager: no notifier, nothing sent.
  assert.equal(createNotifier(fakeEnv({}), sender, QUIET), null);
  assert.equal(sent.length, 2);
});

Deno.test("systemd notify: a sender factory is called only when NOTIFY_SOCKET is set", () => {
  let made = 0;
  const factory = () => {
    made++;
    return { sendDatagram: () => {} };
  };
  assert.equal(createNotifier(fakeEnv({ WATCHDOG_USEC: "1000000" }), factory, QUIET), null);
  assert.equal(made, 0);
  assert.ok(createNotifier(fakeEnv({ NOTIFY_SOCKET: "@x" }), factory, QUIET));
  assert.equal(made, 1);
});

Deno.test("systemd watchdog: a WATCHDOG_USEC past the timer's range pings at the longest interval", () => {
  // 2^32 ms would make setInterval warn and fire every millisecond.
  const env = fakeEnv({ WATCHDOG_USEC: String(2 ** 32 * 2_000) });
  assert.equal(takeWatchdogInterval(env, { pid: PID }), MAX_TIMER_MS);
  assert.equal(MAX_TIMER_MS, 2_147_483_647);
});

Deno.test("systemd notify: a failing send never throws; reported once per interval, with a count", () => {
  let now = 0;
  let failing: number | null = 111; // ECONNREFUSED: the manager went away
  const reports: string[] = [];
  const sender = {
    sendDatagram: () => {
      if (failing !== null) {
        throw new OsError("Cannot notify the service manager", { errno: failing });
      }
    },
  };
  const notifier = createNotifier(fakeEnv({ NOTIFY_SOCKET: "/run/x" }), sender, {
    pid: PID,
    report: (message) => reports.push(message),
    clock: () => now,
  })!;
  assert.equal(notifier.notify({ READY: "1" }), false);
  for (let i = 0; i < 100; i++) {
    now += 100;
    assert.equal(notifier.notify({ WATCHDOG: "1" }), false);
  }
  assert.deepEqual(reports, [
    "Cannot notify the service manager: connection refused, READY=1 not sent (1 failed since the last report)",
  ]);
  now = NOTIFY_ERROR_REPORT_INTERVAL_MS + 1;
  failing = 11; // EAGAIN: the queue is full
  assert.equal(notifier.notify({ WATCHDOG: "1" }), false);
  assert.equal(
    reports[1],
    "Cannot notify the service manager: its queue is full, WATCHDOG=1 dropped " +
      "(101 failed since the last report)",
  );
  failing = null;
  assert.equal(notifier.notify({ STOPPING: "1" }), true);
  assert.equal(
    reports[2],
    "Notifying the service manager again (0 more failed since the last report)",
  );
  assert.equal(reports.length, 3);
});
