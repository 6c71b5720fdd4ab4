import assert from "node:assert/strict";
import { clientAddress, isMappedIPv4 } from "../lib/address.ts";
import { canonicalAddress } from "../lib/ip.ts";

Deno.test("clientAddress() logs IPv4 clients of a dual-stack socket as IPv4, and changes only those", () => {
  assert.equal(clientAddress("203.0.113.5"), "203.0.113.5");
  assert.equal(clientAddress("::ffff:203.0.113.5"), "203.0.113.5");
  assert.equal(clientAddress("2001:db8::1"), "2001:db8::1");
  assert.equal(clientAddress("::ffff:a00:1"), "::ffff:a00:1");
  assert.ok(isMappedIPv4("::ffff:10.0.0.1"));
  assert.ok(!isMappedIPv4("::ffff:a00:1"));
  assert.ok(!isMappedIPv4("10.0.0.1"));
});

Deno.test("clientAddress() gives the canonical form for the addresses Deno reports", async () => {
  // What the runtime reports for real clients, checked against the full parser.
  const listener = Deno.listen({ hostname: "::", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  try {
    for (const hostname of ["127.0.0.1", "::1", "127.0.0.2"]) {
      const client = await Deno.connect({ hostname, port });
      const conn = await listener.accept();
      const reported = (conn.remoteAddr as Deno.NetAddr).hostname;
      conn.close();
      client.close();
      assert.equal(clientAddress(reported), canonicalAddress(reported), reported);
    }
  } finally {
    listener.close();
  }
  // Rust's Ipv6Addr formatting, which Deno uses, is RFC 5952: these are fixed points.
  for (const text of ["2001:db8::1", "2001:db8:0:1:1:1:1:1", "2001:db8::1:0:0:1", "::", "fe80::"]) {
    assert.equal(clientAddress(text), canonicalAddress(text));
  }
});
