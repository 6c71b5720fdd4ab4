import assert from "node:assert/strict";
import { Throttle } from "../../lib/log/throttle.ts";
import { withFakeClocks } from "../_util.ts";

Deno.test("Throttle reports failures at most once per interval, with the count", () => {
  let now = 0;
  const throttle = new Throttle(1000, { clock: () => now });
  assert.equal(throttle.fail(), 1);
  now = 10;
  assert.equal(throttle.fail(), null);
  assert.equal(throttle.fail(3), null);
  now = 1000;
  assert.equal(throttle.fail(), 5);
  assert.equal(throttle.pending, 0);
});

Deno.test("Throttle reports a recovery at once after a reported failure", () => {
  let now = 0;
  const throttle = new Throttle(1000, { clock: () => now });
  assert.equal(throttle.fail(), 1);
  now = 5;
  assert.equal(throttle.fail(), null);
  assert.ok(throttle.open);
  assert.equal(throttle.recover(), 1);
  assert.ok(!throttle.open);
});

Deno.test("Throttle: failing and recovering many times a second gives two reports a second", () => {
  let now = 0;
  const throttle = new Throttle(1000, { clock: () => now });
  const reports: string[] = [];
  for (let i = 0; i < 100; i++) {
    now = i * 20; // a failure and a recovery every 20 ms, for 2 s
    const failed = throttle.fail();
    if (failed !== null) reports.push(`fail ${failed}`);
    const recovered = throttle.open ? throttle.recover() : null;
    if (recovered !== null) reports.push(`recover ${recovered}`);
  }
  assert.deepEqual(reports, ["fail 1", "recover 0", "fail 50", "recover 0"]);
  // 100 failures: 51 were reported, the 49 after the last report wait for the next one.
  assert.equal(throttle.pending, 49);
});

Deno.test("Throttle times intervals on the monotonic clock: wall clock steps change nothing", () => {
  const HOUR_MS = 3_600_000;
  let wall = Date.UTC(2024, 6, 8, 21, 26, 48);
  let monotonic = 1_000;
  const reports: string[] = [];
  withFakeClocks({ wall: () => wall, monotonic: () => monotonic }, () => {
    const throttle = new Throttle(10_000); // the default clock, as the daemon uses it
    // A failure every 100 ms for 40 s; the wall clock goes back an hour after 5 s (an NTP
    // step, a restored VM snapshot) and forward an hour after 25 s.
    for (let tenth = 0; tenth <= 400; tenth++) {
      if (tenth === 50) wall -= HOUR_MS;
      if (tenth === 250) wall += HOUR_MS;
      const count = throttle.fail();
      if (count !== null) reports.push(`${tenth / 10} s: ${count}`);
      wall += 100;
      monotonic += 100;
    }
  });
  // One report per 10 s, each with the failures since the previous one.
  assert.deepEqual(reports, ["0 s: 1", "10 s: 100", "20 s: 100", "30 s: 100", "40 s: 100"]);
});
