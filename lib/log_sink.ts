/** A LogTape sink that formats records with net-bouncer's formats and hands them to the writer. */
import type { LogRecord, Sink } from "@logtape/logtape";
import type { Formatter } from "./format.ts";

function render(message: readonly unknown[]): string {
  let text = "";
  for (let i = 0; i < message.length; i++) {
    text += i % 2 === 0 ? message[i] : String(message[i]);
  }
  return text;
}

/**
 * Creates the sink for every event but connections (those skip LogTape: see lib/server.ts).
 * Properties become JSON fields; `event` names the event (default `"message"`).
 */
export function getLineSink(lines: { write(line: string): void }, formatter: Formatter): Sink {
  return (record: LogRecord) => {
    const { event = "message", ...fields } = record.properties;
    lines.write(
      formatter.event(record.timestamp, {
        level: record.level,
        event: String(event),
        message: render(record.message),
        fields,
      }),
    );
  };
}
