/**
 * lib/systemd/systemd.ts in-process: sd_listen_fds(3) semantics (whose sockets, how many, their names,
 * the variables unset), sd_notify(3) addresses and messages, and the watchdog interval. The
 * same protocols under a real systemd: tests/system/systemd_live_test.ts.
 */
import assert from "node:assert/strict";
import {
  createNotifier,
  encodeNotifyAddress,
  type Environment,
  LISTEN_VARIABLES,
  NOTIFY_VARIABLES,
  notifyMessage,
  SystemdEnvironmentError,
  takeListenFds,
  takeWatchdogInterval,
} from "../../lib/systemd/systemd.ts";

/** A fake environment; `map` shows what is left. */
function fakeEnv(vars: Record<string, string>): Environment & { map: Map<string, string> } {
  const map = new Map(Object.entries(vars));
  return { map, get: (key) => map.get(key), delete: (key) => void map.delete(key) };
}

const PID = 4242;

Deno.test("systemd activation: sockets passed to this process, named, from fd 3", () => {
  const env = fakeEnv({
    LISTEN_PID: String(PID),
    LISTEN_FDS: "3",
    LISTEN_FDNAMES: "ssh:telnet:telnet",
    PATH: "/usr/bin",
  });
  assert.deepEqual(takeListenFds(env, { pid: PID }), [
    { fd: 3, name: "ssh" },
    { fd: 4, name: "telnet" },
    { fd: 5, name: "telnet" },
  ]);
  // Only the three activation variables are gone.
  assert.deepEqual([...env.map.keys()], ["PATH"]);
});

Deno.test('systemd activation: without LISTEN_FDNAMES every socket is "unknown"', () => {
  const env = fakeEnv({ LISTEN_PID: String(PID), LISTEN_FDS: "2" });
  assert.deepEqual(takeListenFds(env, { pid: PID }), [
    { fd: 3, name: "unknown" },
    { fd: 4, name: "unknown" },
  ]);
});

Deno.test("systemd activation: sockets for another process are not taken, still unset", () => {
  // Inherited from an activated parent: LISTEN_PID names the parent.
  const env = fakeEnv({ LISTEN_PID: String(PID + 1), LISTEN_FDS: "1", LISTEN_FDNAMES: "x" });
  assert.equal(takeListenFds(env, { pid: PID }), null);
  assert.equal(env.map.size, 0);
});

Deno.test("systemd activation: no LISTEN_PID or no LISTEN_FDS means not activated", () => {
  assert.equal(takeListenFds(fakeEnv({ LISTEN_FDS: "1" }), { pid: PID }), null);
  assert.equal(takeListenFds(fakeEnv({ LISTEN_PID: String(PID) }), { pid: PID }), null);
  assert.equal(takeListenFds(fakeEnv({}), { pid: PID }), null);
});

Deno.test("systemd activation: malformed variables for this process are errors", () => {
  const cases: [Record<string, string>, RegExp][] = [
    [{ LISTEN_PID: "12x", LISTEN_FDS: "1" }, /^Invalid LISTEN_PID "12x": not a process id$/],
    [{ LISTEN_PID: "0", LISTEN_FDS: "1" }, /^Invalid LISTEN_PID "0"/],
    [{ LISTEN_PID: String(PID), LISTEN_FDS: "0" }, /^Invalid LISTEN_FDS "0": not a positive/],
    [{ LISTEN_PID: String(PID), LISTEN_FDS: "-1" }, /^Invalid LISTEN_FDS "-1"/],
    [{ LISTEN_PID: String(PID), LISTEN_FDS: " 1" }, /^Invalid LISTEN_FDS " 1"/],
    [
      { LISTEN_PID: String(PID), LISTEN_FDS: "2", LISTEN_FDNAMES: "a" },
      /^Invalid LISTEN_FDNAMES "a": 1 names for 2 sockets$/,
    ],
  ];
  for (const [vars, message] of cases) {
    const env = fakeEnv(vars);
    assert.throws(() => takeListenFds(env, { pid: PID }), (error: unknown) => {
      assert.ok(error instanceof SystemdEnvironmentError, String(error));
      assert.match(error.message, message);
      return true;
    });
    // Unset even when rejected.
    for (const name of LISTEN_VARIABLES) assert.equal(env.map.has(name), false, name);
  }
});

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
  const notifier = createNotifier(env, sender, { pid: PID });
  assert.ok(notifier);
  assert.equal(notifier.watchdogIntervalMs, 10_000);
  for (const name of NOTIFY_VARIABLES) assert.equal(env.map.has(name), false, name);
  notifier.notify({ READY: "1" });
  notifier.notify({ WATCHDOG: "1" });
  const address = [...encodeNotifyAddress("/run/systemd/notify")];
  assert.deepEqual(sent, [[address, "READY=1\n"], [address, "WATCHDOG=1\n"]]);
  // Not under a service manager: no notifier, nothing sent.
  assert.equal(createNotifier(fakeEnv({}), sender, { pid: PID }), null);
  assert.equal(sent.length, 2);
});

Deno.test("systemd notify: a sender factory is called only when NOTIFY_SOCKET is set", () => {
  let made = 0;
  const factory = () => {
    made++;
    return { sendDatagram: () => {} };
  };
  assert.equal(createNotifier(fakeEnv({ WATCHDOG_USEC: "1000000" }), factory, { pid: PID }), null);
  assert.equal(made, 0);
  assert.ok(createNotifier(fakeEnv({ NOTIFY_SOCKET: "@x" }), factory, { pid: PID }));
  assert.equal(made, 1);
});
