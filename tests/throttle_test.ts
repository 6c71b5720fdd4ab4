import assert from "node:assert/strict";
import { Throttle } from "../lib/throttle.ts";

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
  // Every failure was counted in a report.
  assert.equal(throttle.pending, 49);
});
