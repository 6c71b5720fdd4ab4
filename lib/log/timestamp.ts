/** Timestamps for log lines, in local time; computed once per second because of their cost. */

function pad2(value: number): string {
  return value < 10 ? `0${value}` : `${value}`;
}

function pad3(value: number): string {
  return value < 10 ? `00${value}` : value < 100 ? `0${value}` : `${value}`;
}

/** The parts of a local-time timestamp that change at most once a second. */
export interface SecondParts {
  /** `2026-11-25 08:01:02.`: the classic format up to the milliseconds. */
  text: string;
  /** `2026-11-25T08:01:02.`: RFC 3339 up to the milliseconds. */
  iso: string;
  /** `+01:00`: the offset from UTC. */
  offset: string;
}

/** The local-time parts of the timestamp for `second` (seconds since the epoch). */
export function secondParts(second: number): SecondParts {
  const date = new Date(second * 1000);
  const day = `${date.getFullYear()}-${pad2(date.getMonth() + 1)}-${pad2(date.getDate())}`;
  const time = `${pad2(date.getHours())}:${pad2(date.getMinutes())}:${pad2(date.getSeconds())}`;
  const minutes = -date.getTimezoneOffset();
  const abs = Math.abs(minutes);
  return {
    text: `${day} ${time}.`,
    iso: `${day}T${time}.`,
    offset: `${minutes < 0 ? "-" : "+"}${pad2(Math.floor(abs / 60))}:${pad2(abs % 60)}`,
  };
}

/** Formats timestamps, with the text up to the second cached. */
export class Timestamps {
  #second = NaN;
  #parts: SecondParts = secondParts(0);

  #at(second: number): SecondParts {
    if (second !== this.#second) {
      this.#second = second;
      this.#parts = secondParts(second);
    }
    return this.#parts;
  }

  /** `2026-11-25 08:01:02.345`: the classic format, local time with milliseconds. */
  text(ms: number): string {
    const second = Math.floor(ms / 1000);
    return this.#at(second).text + pad3(ms - second * 1000);
  }

  /** `2026-11-25T08:01:02.345+01:00`: RFC 3339, local time with its offset. */
  rfc3339(ms: number): string {
    const second = Math.floor(ms / 1000);
    const parts = this.#at(second);
    return parts.iso + pad3(ms - second * 1000) + parts.offset;
  }
}
