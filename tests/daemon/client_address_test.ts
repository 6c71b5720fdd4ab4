/** The one address form (bytes) and the line written from it, as the text form gives it. */
import assert from "node:assert/strict";
import { addressBytes, addressText } from "../../lib/daemon/client_address.ts";
import { createFormatter, LOG_FORMATS } from "../../lib/log/format.ts";
import { canonicalAddress } from "../../lib/config/ip.ts";
import { ipv6Bytes } from "../_util.ts";

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

const IPV6_VECTORS: [string, string][] = [
  ["0:0:0:0:0:0:0:0", "::"],
  ["0:0:0:0:0:0:0:1", "::1"],
  ["1:0:0:0:0:0:0:0", "1::"],
  ["2001:db8:0:0:0:0:2:1", "2001:db8::2:1"],
  ["2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"], // one zero group stays
  ["2001:0:0:1:0:0:0:1", "2001:0:0:1::1"], // the longest run
  ["2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"], // the first of equal runs
  ["2001:db8:aaaa:bbbb:cccc:dddd:eeee:aaaa", "2001:db8:aaaa:bbbb:cccc:dddd:eeee:aaaa"],
  ["ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"],
  ["fe80:0:0:0:200:5eff:fe00:5301", "fe80::200:5eff:fe00:5301"],
  ["0:0:0:0:0:0:102:304", "::102:304"], // IPv4-compatible: plain hex
  ["0:1:0:0:0:0:0:0", "0:1::"],
  ["0:0:1:0:0:0:0:0", "0:0:1::"],
  ["1:0:1:0:1:0:1:0", "1:0:1:0:1:0:1:0"],
  ["abcd:ef01:2345:6789:abcd:ef01:2345:6789", "abcd:ef01:2345:6789:abcd:ef01:2345:6789"],
  ["0:0:0:0:0:ffff:0:0", "::ffff:0:0"],
  ["2001:db8:0:0:0:0:0:0", "2001:db8::"],
  ["a:b:c:d:e:f:0:0", "a:b:c:d:e:f::"],
];

Deno.test("addressText() gives RFC 5952 text for many vectors, as ipaddr.js does", () => {
  for (const [input, expected] of IPV6_VECTORS) {
    assert.equal(addressText(ipv6Bytes(input)), expected, input);
    // The same text as the canonical form used for -b and the allow-list (except mapped ones).
    if (!expected.startsWith("::ffff:")) assert.equal(canonicalAddress(expected), expected);
  }
});

Deno.test("addressText() agrees with ipaddr.js on 5,000 random addresses with zero runs", () => {
  let seed = 42;
  const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  for (let i = 0; i < 5_000; i++) {
    const bytes = new Uint8Array(16);
    for (let group = 0; group < 8; group++) {
      if (random() < 0.5) continue; // zero groups, in runs of every length
      const value = Math.floor(random() * 0x10000);
      bytes[2 * group] = value >> 8;
      bytes[2 * group + 1] = value & 0xff;
    }
    if (bytes.subarray(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff) {
      continue; // mapped: logged as IPv4
    }
    const text = addressText(bytes);
    assert.equal(canonicalAddress(text), text);
    assert.deepEqual(ipv6Bytes(text), bytes);
  }
});
