/** The metrics registry, and what the daemon counts into it (Bouncer, LogWriter). */
import { newMetrics, promtoolCheck, sample, samples, START_MS } from "./_metrics_util.ts";
import assert from "node:assert/strict";
import { Bouncer } from "../../lib/daemon/bouncer.ts";
import { EventLog } from "../../lib/log/event_log.ts";
import { createFormatter } from "../../lib/log/format.ts";
import { LogWriter, type WriteTarget } from "../../lib/log/log_writer.ts";
import { ACCEPT_ERROR_REASONS, Metrics } from "../../lib/metrics/metrics.ts";
import { PrefixSet } from "../../lib/config/prefix_set.ts";
import { needsTools } from "../_util.ts";

import { addressBytes } from "../../lib/daemon/client_address.ts";
import { FakeListeners } from "../daemon/_fake_listeners.ts";

Deno.test("Metrics renders every series with HELP and TYPE, zero before any event", () => {
  const metrics = newMetrics();
  metrics.addPort(23);
  metrics.addPort(22);
  assert.equal(
    metrics.render(),
    [
      "# HELP net_bouncer_connections_total Connections logged, by port and family.",
      "# TYPE net_bouncer_connections_total counter",
      'net_bouncer_connections_total{port="22",family="ipv4"} 0',
      'net_bouncer_connections_total{port="22",family="ipv6"} 0',
      'net_bouncer_connections_total{port="23",family="ipv4"} 0',
      'net_bouncer_connections_total{port="23",family="ipv6"} 0',
      "# HELP net_bouncer_ignored_connections_total Connections closed without a line (allow-listed), by port.",
      "# TYPE net_bouncer_ignored_connections_total counter",
      'net_bouncer_ignored_connections_total{port="22"} 0',
      'net_bouncer_ignored_connections_total{port="23"} 0',
      "# HELP net_bouncer_connections_reset_before_accept_total Connections reset before their address could be read (portable listener), by port.",
      "# TYPE net_bouncer_connections_reset_before_accept_total counter",
      'net_bouncer_connections_reset_before_accept_total{port="22"} 0',
      'net_bouncer_connections_reset_before_accept_total{port="23"} 0',
      "# HELP net_bouncer_accept_errors_total Failed accepts, by reason.",
      "# TYPE net_bouncer_accept_errors_total counter",
      'net_bouncer_accept_errors_total{reason="emfile"} 0',
      'net_bouncer_accept_errors_total{reason="enfile"} 0',
      'net_bouncer_accept_errors_total{reason="enobufs"} 0',
      'net_bouncer_accept_errors_total{reason="enomem"} 0',
      'net_bouncer_accept_errors_total{reason="other"} 0',
      "# HELP net_bouncer_log_write_failures_total Failed writes to the log.",
      "# TYPE net_bouncer_log_write_failures_total counter",
      "net_bouncer_log_write_failures_total 0",
      "# HELP net_bouncer_log_dropped_lines_total Lines dropped because the log could not be written.",
      "# TYPE net_bouncer_log_dropped_lines_total counter",
      "net_bouncer_log_dropped_lines_total 0",
      "# HELP net_bouncer_log_reopens_total Reopens of the log file (SIGHUP).",
      "# TYPE net_bouncer_log_reopens_total counter",
      "net_bouncer_log_reopens_total 0",
      "# HELP net_bouncer_allow_list_prefixes Prefixes in the allow-list.",
      "# TYPE net_bouncer_allow_list_prefixes gauge",
      "net_bouncer_allow_list_prefixes 0",
      "# HELP net_bouncer_last_connection_timestamp_seconds When the last connection was logged, since the Unix epoch, in seconds (0: none yet).",
      "# TYPE net_bouncer_last_connection_timestamp_seconds gauge",
      "net_bouncer_last_connection_timestamp_seconds 0",
      "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.",
      "# TYPE process_cpu_seconds_total counter",
      "process_cpu_seconds_total 1.25",
      "# HELP process_open_fds Number of open file descriptors.",
      "# TYPE process_open_fds gauge",
      "process_open_fds 9",
      "# HELP process_max_fds Maximum number of open file descriptors.",
      "# TYPE process_max_fds gauge",
      "process_max_fds 1024",
      "# HELP process_resident_memory_bytes Resident memory size in bytes.",
      "# TYPE process_resident_memory_bytes gauge",
      "process_resident_memory_bytes 50331648",
      "# HELP process_start_time_seconds Start time of the process since the Unix epoch, in seconds.",
      "# TYPE process_start_time_seconds gauge",
      "process_start_time_seconds 1764000000.123",
      "# HELP net_bouncer_build_info Always 1; the version is a label.",
      "# TYPE net_bouncer_build_info gauge",
      'net_bouncer_build_info{version="1.2.3"} 1',
      "",
    ].join("\n"),
  );
});

Deno.test("Metrics counts each event in its own series", () => {
  const metrics = newMetrics();
  metrics.addPort(22);
  metrics.addPort(2323);
  for (let i = 0; i < 3; i++) metrics.connection(22, 4, START_MS);
  metrics.connection(22, 6, START_MS);
  metrics.connection(2323, 6, START_MS);
  metrics.ignored(2323);
  metrics.ignored(2323);
  metrics.resetBeforeAccept(22);
  metrics.acceptError("emfile");
  metrics.acceptError("other");
  metrics.acceptError("other");
  metrics.writeFailure();
  metrics.droppedLines(5);
  metrics.droppedLines(2);
  metrics.reopen();
  metrics.allowListSize(7);
  metrics.allowListSize(4); // a gauge: the last value
  const text = metrics.render();
  assert.equal(sample(text, 'net_bouncer_connections_total{port="22",family="ipv4"}'), 3);
  assert.equal(sample(text, 'net_bouncer_connections_total{port="22",family="ipv6"}'), 1);
  assert.equal(sample(text, 'net_bouncer_connections_total{port="2323",family="ipv4"}'), 0);
  assert.equal(sample(text, 'net_bouncer_connections_total{port="2323",family="ipv6"}'), 1);
  assert.equal(sample(text, 'net_bouncer_ignored_connections_total{port="22"}'), 0);
  assert.equal(sample(text, 'net_bouncer_ignored_connections_total{port="2323"}'), 2);
  assert.equal(sample(text, 'net_bouncer_connections_reset_before_accept_total{port="22"}'), 1);
  assert.equal(sample(text, 'net_bouncer_connections_reset_before_accept_total{port="2323"}'), 0);
  assert.equal(sample(text, 'net_bouncer_accept_errors_total{reason="emfile"}'), 1);
  assert.equal(sample(text, 'net_bouncer_accept_errors_total{reason="enfile"}'), 0);
  assert.equal(sample(text, 'net_bouncer_accept_errors_total{reason="other"}'), 2);
  assert.equal(sample(text, "net_bouncer_log_write_failures_total"), 1);
  assert.equal(sample(text, "net_bouncer_log_dropped_lines_total"), 7);
  assert.equal(sample(text, "net_bouncer_log_reopens_total"), 1);
  assert.equal(sample(text, "net_bouncer_allow_list_prefixes"), 4);
});

Deno.test("Metrics: the series do not grow with events, only with ports", () => {
  const metrics = newMetrics();
  metrics.addPort(22);
  const before = samples(metrics.render()).length;
  for (let i = 0; i < 10_000; i++) {
    metrics.connection(22, i % 2 === 0 ? 4 : 6, START_MS);
    metrics.ignored(22);
    metrics.resetBeforeAccept(22);
    metrics.acceptError(ACCEPT_ERROR_REASONS[i % ACCEPT_ERROR_REASONS.length]);
  }
  metrics.addPort(22); // known: kept, not reset
  assert.equal(samples(metrics.render()).length, before);
  assert.equal(
    sample(metrics.render(), 'net_bouncer_connections_total{port="22",family="ipv4"}'),
    5_000,
  );
  // A port that was never added still counts (once made, it is as if added).
  metrics.connection(80, 4, START_MS);
  const text = metrics.render();
  assert.equal(samples(text).length, before + 4);
  assert.equal(sample(text, 'net_bouncer_connections_total{port="80",family="ipv4"}'), 1);
});

Deno.test("Metrics escapes the version label and counts beyond 2^32", () => {
  const metrics = new Metrics({ version: 'a"b\\c\nd', clock: () => 0 });
  metrics.droppedLines(2 ** 32);
  metrics.droppedLines(1);
  const text = metrics.render();
  assert.ok(text.includes('net_bouncer_build_info{version="a\\"b\\\\c\\nd"} 1\n'), text);
  assert.equal(sample(text, "net_bouncer_log_dropped_lines_total"), 2 ** 32 + 1);
  assert.equal(sample(text, "process_start_time_seconds"), 0);
});

Deno.test({
  name: "promtool check metrics accepts the exposition text",
  ignore: needsTools("promtool"),
  fn: async () => {
    const metrics = newMetrics();
    for (const port of [22, 23, 2323]) metrics.addPort(port);
    metrics.connection(22, 4, START_MS);
    await promtoolCheck(metrics.render());
  },
});

// --- What the daemon counts: Bouncer and LogWriter feeding a Metrics ---

const LAST_MS = START_MS + 3_600_000;

Deno.test("Bouncer counts into Metrics: ports when bound, each event in its series", async () => {
  const listeners = new FakeListeners();
  const metrics = newMetrics();
  const formatter = createFormatter("text");
  const allowList = new PrefixSet();
  allowList.add("192.0.2.0/24");
  const server = new Bouncer(listeners, { writeBytes: () => {} }, {
    formatter,
    log: new EventLog({ write: () => {} }, formatter),
    allowList,
    metrics,
    clock: () => LAST_MS,
  });
  server.listen([22, 0]);
  // Bound ports have their series before any connection; port 0 is counted as the one bound.
  const bound = metrics.render();
  assert.equal(sample(bound, 'net_bouncer_connections_total{port="22",family="ipv4"}'), 0);
  assert.equal(sample(bound, 'net_bouncer_connections_total{port="40002",family="ipv6"}'), 0);
  assert.ok(!bound.includes('port="0"'));
  const served = server.serve();
  const s = listeners.sink!;
  s.connection(addressBytes("203.0.113.5"), 1000, 22);
  s.connection(addressBytes("2001:db8::1"), 1000, 22);
  s.connection(addressBytes("2001:db8::2"), 1000, 40002);
  s.connection(addressBytes("192.0.2.7"), 1000, 22); // allow-listed
  s.dropped(40002);
  s.reset(22);
  s.acceptFailed({ kind: "resource", code: "EMFILE" }, 22);
  s.acceptFailed({ kind: "resource", code: "ENOBUFS" }, 22);
  s.acceptFailed({ kind: "connection", code: "ECONNABORTED" }, 22);
  const text = metrics.render();
  assert.equal(sample(text, 'net_bouncer_connections_total{port="22",family="ipv4"}'), 1);
  assert.equal(sample(text, 'net_bouncer_connections_total{port="22",family="ipv6"}'), 1);
  assert.equal(sample(text, 'net_bouncer_connections_total{port="40002",family="ipv6"}'), 1);
  assert.equal(sample(text, 'net_bouncer_ignored_connections_total{port="22"}'), 1);
  assert.equal(sample(text, 'net_bouncer_ignored_connections_total{port="40002"}'), 1);
  assert.equal(sample(text, 'net_bouncer_connections_reset_before_accept_total{port="22"}'), 1);
  assert.equal(sample(text, 'net_bouncer_accept_errors_total{reason="emfile"}'), 1);
  assert.equal(sample(text, 'net_bouncer_accept_errors_total{reason="enobufs"}'), 1);
  assert.equal(sample(text, 'net_bouncer_accept_errors_total{reason="other"}'), 1);
  assert.equal(samples(text).length, samples(bound).length);
  // The time of the last connection logged (not of the allow-listed one), for "no connection
  // for 6 hours" alerts.
  assert.equal(sample(bound, "net_bouncer_last_connection_timestamp_seconds"), 0);
  assert.equal(sample(text, "net_bouncer_last_connection_timestamp_seconds"), LAST_MS / 1000);
  server.close();
  await served;
});

Deno.test("LogWriter counts into Metrics: failed writes, dropped lines, reopens", () => {
  const metrics = newMetrics();
  let full = false;
  const target = (): WriteTarget => ({
    writeSync: (data) => {
      if (full) throw Object.assign(new Error("No space left on device"), { code: "ENOSPC" });
      return data.length;
    },
    close: () => {},
  });
  const writer = new LogWriter("/nonexistent/log", {
    open: target,
    report: () => {},
    metrics,
  });
  writer.write("one\n");
  full = true;
  writer.write("two\n");
  writer.write("three\nfour\n");
  full = false;
  writer.reopen();
  writer.reopen();
  const text = metrics.render();
  assert.equal(sample(text, "net_bouncer_log_write_failures_total"), 2);
  assert.equal(sample(text, "net_bouncer_log_dropped_lines_total"), 3);
  assert.equal(sample(text, "net_bouncer_log_reopens_total"), 2);
});
