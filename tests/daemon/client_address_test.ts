/** The one address form (bytes) and the line written from it, as the text form gives it. */
import assert from "node:assert/strict";
import { addressBytes, addressText } from "../../lib/daemon/client_address.ts";
import { createFormatter, LOG_FORMATS } from "../../lib/log/format.ts";

const ADDRESSES = [
  "0.0.0.0",
  "9.10.99.100",
  "255.255.255.255",
  "203.0.113.5",
  "::",
  "::1",
  "2001:db8::1",
  "2001:db8:0:1:1:1:1:1",
  "fe80::1:0:0:1",
  "1:2:3:4:5:6:7:8",
  "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
];

Deno.test("addressBytes and addressText are inverse on canonical text; mapped IPv4 is IPv4", () => {
  for (const text of ADDRESSES) assert.equal(addressText(addressBytes(text)), text, text);
  assert.deepEqual([...addressBytes("::ffff:192.0.2.1")], [192, 0, 2, 1]);
  assert.equal(addressText(addressBytes("64:ff9b::192.0.2.1")), "64:ff9b::c000:201");
});

Deno.test("writeConnection writes in place exactly the line connection() gives", () => {
  for (const format of LOG_FORMATS) {
    const formatter = createFormatter(format);
    const buffer = new Uint8Array(16_384);
    let offset = 7; // not at the start: lines follow each other in the batch
    let expected = "";
    let ms = 1_764_000_000_998;
    for (const text of ADDRESSES) {
      for (const port of [1, 22, 65535]) {
        ms += 1; // crosses a second, and stays in one millisecond for two lines
        if (port === 65535) ms -= 1;
        expected += new TextDecoder().decode(formatter.connection(ms, text, 40_000 + port, port));
        offset = formatter.writeConnection(
          buffer,
          offset,
          ms,
          addressBytes(text),
          40_000 + port,
          port,
        );
      }
    }
    assert.equal(new TextDecoder().decode(buffer.subarray(7, offset)), expected, format);
  }
});
