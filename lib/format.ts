/** Log line formats: the classic text line and JSON lines. */
import { Timestamps } from "./timestamp.ts";

/** The names of the log formats. */
export const LOG_FORMATS = ["text", "json"] as const;
/** A log format name. */
export type LogFormat = typeof LOG_FORMATS[number];
/** The default log format. */
export const DEFAULT_FORMAT: LogFormat = "text";

/** Severity of an event, as LogTape names them. */
export type Level = "trace" | "debug" | "info" | "warning" | "error" | "fatal";

/** Turns events into complete log lines, each ending in a newline. */
export interface Formatter {
  /** The line for one accepted connection. */
  connection(ms: number, srcIp: string, srcPort: number, dstPort: number): string;
  /** The line for any other event (`listening`, `stopped`, `error`, ...). */
  event(
    ms: number,
    level: Level,
    event: string,
    message: string,
    fields?: Record<string, unknown>,
  ): string;
}

const TEXT_LEVELS: Record<Level, string> = {
  trace: "TRACE",
  debug: "DEBUG",
  info: "INFO",
  warning: "WARN",
  error: "ERROR",
  fatal: "FATAL",
};

/** Creates the formatter for `format`; timestamps are local time. */
export function createFormatter(format: LogFormat): Formatter {
  const time = new Timestamps();
  if (format === "json") {
    return {
      // Built by hand: every value is a canonical IP or a number, so nothing needs escaping,
      // and this runs once per connection.
      connection: (ms, srcIp, srcPort, dstPort) =>
        `{"time":"${
          time.rfc3339(ms)
        }","level":"info","event":"connection","src_ip":"${srcIp}","src_port":${srcPort},"dst_port":${dstPort}}\n`,
      event: (ms, level, event, message, fields) =>
        JSON.stringify({ time: time.rfc3339(ms), level, event, message, ...fields }) + "\n",
    };
  }
  return {
    connection: (ms, srcIp, _srcPort, dstPort) =>
      `${time.text(ms)} [INFO] Connection from ${srcIp} on port ${dstPort}\n`,
    // The words "Connection from" are reserved for connection lines (ban filters match them).
    event: (ms, level, _event, message) =>
      `${time.text(ms)} [${TEXT_LEVELS[level]}] ${
        message.replaceAll("Connection from", "Connection-from").replace(/[\r\n]+/g, " ")
      }\n`,
  };
}
