import assert from "node:assert/strict";
import { createFormatter } from "../../lib/log/format.ts";
import { withTimeZone } from "../_util.ts";

// 2026-11-25 08:01:02.345 UTC
const MS = Date.UTC(2026, 10, 25, 8, 1, 2, 345);
const decoder = new TextDecoder();

/** The connection line as text (the formatter returns bytes in a reused buffer). */
function connection(format: "text" | "json", ms: number, ip: string, src: number, dst: number) {
  return decoder.decode(createFormatter(format).connection(ms, ip, src, dst));
}

Deno.test("text format writes exactly the classic line in local time with milliseconds", () => {
  withTimeZone("UTC", () => {
    const text = createFormatter("text");
    assert.equal(
      decoder.decode(text.connection(MS, "203.0.113.5", 51234, 22)),
      "2026-11-25 08:01:02.345 [INFO] Connection from 203.0.113.5 on port 22\n",
    );
    // The buffer is reused: the second line (next second, another port) is whole and right.
    assert.equal(
      decoder.decode(text.connection(MS + 655, "2001:db8::1", 1, 2222)),
      "2026-11-25 08:01:03.000 [INFO] Connection from 2001:db8::1 on port 2222\n",
    );
    assert.equal(
      decoder.decode(text.connection(MS + 665, "1.2.3.4", 1, 65535)),
      "2026-11-25 08:01:03.010 [INFO] Connection from 1.2.3.4 on port 65535\n",
    );
    assert.equal(
      decoder.decode(text.connection(MS + 755, "1.2.3.4", 1, 1)),
      "2026-11-25 08:01:03.100 [INFO] Connection from 1.2.3.4 on port 1\n",
    );
    assert.equal(
      text.event(MS + 7, {
        level: "info",
        event: "listening",
        message: "Listening on port 22 (IPv4 and IPv6, any address)",
      }),
      "2026-11-25 08:01:02.352 [INFO] Listening on port 22 (IPv4 and IPv6, any address)\n",
    );
  });
  withTimeZone("Asia/Kolkata", () => {
    assert.equal(
      connection("text", MS + 1, "192.0.2.1", 5, 23),
      "2026-11-25 13:31:02.346 [INFO] Connection from 192.0.2.1 on port 23\n",
    );
  });
});

Deno.test("text format keeps 'Connection from' for connection lines only, one line per event", () => {
  withTimeZone("UTC", () => {
    const line = createFormatter("text").event(MS, {
      level: "error",
      event: "error",
      message: "Connection from x\ny",
    });
    assert.equal(line, "2026-11-25 08:01:02.345 [ERROR] Connection-from x y\n");
  });
});

Deno.test("json format writes one object per line with an RFC 3339 time and offset", () => {
  withTimeZone("America/New_York", () => {
    const json = createFormatter("json");
    const line = decoder.decode(json.connection(MS, "203.0.113.5", 51234, 22));
    assert.ok(line.endsWith("}\n") && !line.slice(0, -1).includes("\n"));
    assert.deepEqual(JSON.parse(line), {
      time: "2026-11-25T03:01:02.345-05:00",
      level: "info",
      event: "connection",
      src_ip: "203.0.113.5",
      src_port: 51234,
      dst_port: 22,
    });
    assert.equal(new Date(JSON.parse(line).time).getTime(), MS);
    assert.deepEqual(
      JSON.parse(json.event(MS, {
        level: "info",
        event: "stopped",
        message: "Stopped after 1 connection",
        fields: { count: 1, message: "a field cannot replace the message", time: 0 },
      })),
      {
        time: "2026-11-25T03:01:02.345-05:00",
        level: "info",
        event: "stopped",
        message: "Stopped after 1 connection",
        count: 1,
      },
    );
  });
  withTimeZone("Asia/Kolkata", () => {
    const line = connection("json", MS, "::1", 1, 2);
    assert.equal(JSON.parse(line).time, "2026-11-25T13:31:02.345+05:30");
  });
});
