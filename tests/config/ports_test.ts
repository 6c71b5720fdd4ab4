import assert from "node:assert/strict";
import { MAX_PORTS, parsePorts } from "../../lib/config/ports.ts";

Deno.test("parsePorts() takes single ports, lists and ranges, merged and sorted", () => {
  assert.deepEqual(parsePorts(["22", "23,2323", "8000-8003", "22", "8001"]), [
    22,
    23,
    2323,
    8000,
    8001,
    8002,
    8003,
  ]);
  assert.deepEqual(parsePorts(["1", "65535"]), [1, 65535]);
  assert.deepEqual(parsePorts(["5-5"]), [5]);
});

Deno.test("parsePorts() rejects every bad value with a message that quotes it", () => {
  const cases: [string, RegExp][] = [
    ["0-5", /^Cannot listen on port "0": value must be 1-65535$/],
    ["65536", /^Cannot listen on port "65536": value must be 0-65535$/],
    ["abc", /^Cannot listen on port "abc": not a number$/],
    ["-1", /^Cannot listen on port "-1": not a number$/],
    ["1e3", /^Cannot listen on port "1e3": not a number$/],
    ["22-", /^Cannot listen on ports "22-": a range must be FIRST-LAST$/],
    ["10-5", /^Cannot listen on ports "10-5": range must be ascending$/],
    ["22,", /^Cannot listen on port "": not a number$/],
    [" 22", /^Cannot listen on port " 22": not a number$/],
    ["0x16", /"0x16": not a number/],
    ["1-2-3", /"1-2-3": not a number/],
  ];
  for (const [spec, message] of cases) {
    assert.throws(() => parsePorts([spec]), (error: Error) => {
      assert.ok(error instanceof RangeError, spec);
      assert.match(error.message, message);
      return true;
    });
  }
});

Deno.test("parsePorts() allows at most MAX_PORTS ports in all", () => {
  assert.equal(parsePorts([`1-${MAX_PORTS}`]).length, MAX_PORTS);
  assert.throws(() => parsePorts([`1-${MAX_PORTS + 1}`]), /at most 1024 ports/);
  assert.throws(() => parsePorts([`1-${MAX_PORTS}`, "5000"]), /at most 1024 ports/);
});
