/** Accept errors sorted by errno, once for every accept loop (native, portable, metrics). */
import assert from "node:assert/strict";
import { ACCEPT_ERROR_REASONS } from "../lib/metrics/metrics.ts";
import { acceptErrorCode, acceptErrorKind, RESOURCE_ERRORS } from "../lib/accept_error.ts";
import { portableAcceptFailure } from "../lib/daemon/portable_listener.ts";
import { errnoName } from "../lib/linux/libc.ts";

Deno.test("acceptErrorKind: an empty queue, a signal, one connection's, resources, the rest", () => {
  const kinds = (codes: string[]) => codes.map(acceptErrorKind);
  assert.deepEqual(kinds(["EAGAIN", "EWOULDBLOCK"]), ["empty", "empty"]);
  assert.deepEqual(kinds(["EINTR"]), ["interrupted"]);
  const oneConnection = ["ECONNABORTED", "ECONNRESET", "ENOTCONN", "EPROTO", "ENETDOWN"];
  assert.deepEqual(kinds(oneConnection), oneConnection.map(() => "connection"));
  assert.deepEqual(kinds(["ENETUNREACH", "EHOSTUNREACH", "ETIMEDOUT", "EPERM"]), [
    "connection",
    "connection",
    "connection",
    "connection",
  ]);
  assert.deepEqual(kinds([...RESOURCE_ERRORS]), RESOURCE_ERRORS.map(() => "resource"));
  assert.deepEqual(kinds(["EBADF", "EINVAL", "errno 9999"]), ["other", "other", "other"]);
  // The native listener's errno numbers have these names.
  assert.deepEqual([103, 71, 24, 23, 105, 12, 9, 11].map(errnoName), [
    "ECONNABORTED",
    "EPROTO",
    "EMFILE",
    "ENFILE",
    "ENOBUFS",
    "ENOMEM",
    "EBADF",
    "EAGAIN",
  ]);
});

Deno.test("the metrics' accept error reasons are the resource errors and 'other'", () => {
  assert.deepEqual(ACCEPT_ERROR_REASONS, ["emfile", "enfile", "enobufs", "enomem", "other"]);
});

Deno.test("Deno's accept errors: by code, else by class; a reset before accept is the portable path's", () => {
  const withCode = (code: string) => Object.assign(new Error(code), { code });
  assert.equal(acceptErrorCode(new Deno.errors.NotConnected("gone")), "ENOTCONN");
  assert.equal(acceptErrorCode(new Deno.errors.ConnectionAborted("aborted")), "ECONNABORTED");
  assert.equal(acceptErrorCode(withCode("EMFILE")), "EMFILE");
  assert.equal(portableAcceptFailure(new Deno.errors.NotConnected("gone")), "reset");
  assert.deepEqual(portableAcceptFailure(new Deno.errors.ConnectionAborted("aborted")), {
    kind: "connection",
    code: "ECONNABORTED",
  });
  assert.deepEqual(portableAcceptFailure(withCode("EMFILE")), { kind: "resource", code: "EMFILE" });
  assert.deepEqual(portableAcceptFailure(withCode("EBADF")), { kind: "other", code: "EBADF" });
});
