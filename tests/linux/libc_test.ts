import assert from "node:assert/strict";
import {
  AF_INET,
  AF_INET6,
  encodeSockaddr,
  epollEventLayout,
  errnoName,
  openLibc,
  readEpollEvent,
  writeEpollEvent,
} from "../../lib/linux/libc.ts";

Deno.test("struct epoll_event: packed 12 bytes on x86_64, 16 on aarch64", () => {
  assert.deepEqual(epollEventLayout("x86_64"), { size: 12, data: 4 });
  assert.deepEqual(epollEventLayout("aarch64"), { size: 16, data: 8 });
  for (const arch of ["x86_64", "aarch64"]) {
    const { size } = epollEventLayout(arch);
    const buffer = new Uint8Array(size * 3).fill(0xee);
    writeEpollEvent(buffer, 1, { events: 1, data: 0xfffffffe, arch });
    assert.deepEqual(readEpollEvent(buffer, 1, arch), { events: 1, data: 0xfffffffe });
    // Neighbours untouched.
    assert.ok(buffer.subarray(0, size).every((b) => b === 0xee), arch);
    assert.ok(buffer.subarray(2 * size).every((b) => b === 0xee), arch);
    const view = new DataView(buffer.buffer);
    assert.equal(view.getUint32(size, true), 1);
    assert.equal(view.getUint32(size + (arch === "x86_64" ? 4 : 8), true), 0xfffffffe);
    assert.equal(view.getUint32(size + (arch === "x86_64" ? 8 : 12), true), 0); // data's high half
  }
});

Deno.test("socket addresses for bind(2): family in host order, port in network order", () => {
  const v4 = encodeSockaddr(Uint8Array.of(127, 0, 0, 1), 0x1234);
  assert.equal(v4.length, 16);
  assert.deepEqual([...v4.subarray(0, 8)], [AF_INET, 0, 0x12, 0x34, 127, 0, 0, 1]);
  const address = new Uint8Array(16);
  address[15] = 1;
  const v6 = encodeSockaddr(address, 22);
  assert.equal(v6.length, 28);
  assert.deepEqual([...v6.subarray(0, 4)], [AF_INET6, 0, 0, 22]);
  assert.deepEqual([...v6.subarray(4, 8)], [0, 0, 0, 0]); // flow info
  assert.equal(v6[23], 1);
});

Deno.test({
  name: "errno is read right after a failed call",
  ignore: Deno.build.os !== "linux",
  fn() {
    const libc = openLibc();
    assert.equal(libc.symbols.socket(12345, 1, 0), -1);
    assert.equal(libc.errno(), 97); // EAFNOSUPPORT
    assert.equal(libc.symbols.close(-1), -1);
    assert.equal(libc.errno(), 9); // EBADF
  },
});

Deno.test("errno names", () => {
  assert.equal(errnoName(24), "EMFILE");
  assert.equal(errnoName(9999), "errno 9999");
});
