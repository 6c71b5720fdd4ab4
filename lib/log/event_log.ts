/**
 * Lines for every event but connections (listening, stopped, errors, ...), in the chosen format.
 *
 * Connection lines skip this: lib/daemon/bouncer.ts builds them as bytes. A logging library bought
 * nothing more here (one destination, two formats of our own) and cost 6 MB of memory per
 * process, so events are formatted and written directly.
 */
import type { EventRecord, Formatter, Level } from "./format.ts";

/** Where event lines go: lib/log/log_writer.ts's `LogWriter` in production. */
export interface LineWriter {
  /** Writes one complete line (ending in a newline). */
  write(line: string): void;
}

/** Fields of an event beyond its message: JSON fields in the JSON format. */
export type EventFields = Record<string, unknown>;

/** Writes event lines: `event` names the event (`listening`, `stopped`, `error`, ...). */
export class EventLog {
  #writer: LineWriter;
  #formatter: Formatter;
  #clock: () => number;

  /** Creates a log that formats with `formatter`, at `clock` time (default `Date.now`). */
  constructor(writer: LineWriter, formatter: Formatter, options: { clock?: () => number } = {}) {
    this.#writer = writer;
    this.#formatter = formatter;
    this.#clock = options.clock ?? Date.now;
  }

  /** Logs an informational event. */
  info(event: string, message: string, fields: EventFields = {}): void {
    this.#log("info", { event, message, fields });
  }

  /** Logs a warning. */
  warn(event: string, message: string, fields: EventFields = {}): void {
    this.#log("warning", { event, message, fields });
  }

  /** Logs an error (the daemon goes on). */
  error(event: string, message: string, fields: EventFields = {}): void {
    this.#log("error", { event, message, fields });
  }

  #log(level: Level, record: Omit<EventRecord, "level">): void {
    this.#writer.write(this.#formatter.event(this.#clock(), { level, ...record }));
  }
}
