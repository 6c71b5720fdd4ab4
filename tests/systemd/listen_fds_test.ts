/**
 * lib/systemd/listen_fds.ts: sd_listen_fds(3) semantics (whose sockets, how many, their names,
 * the variables unset). The same protocol under a real systemd: tests/system/systemd_live_test.ts.
 */
import assert from "node:assert/strict";
import { SystemdEnvironmentError } from "../../lib/systemd/environment.ts";
import { LISTEN_VARIABLES, takeListenFds } from "../../lib/systemd/listen_fds.ts";
import { fakeEnv } from "./_fake_env.ts";

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
