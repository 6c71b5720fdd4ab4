/** Timestamps for log lines, cached per second because every connection needs one. */

/** Milliseconds since the epoch, as `Date.now` returns them. */
export type Clock = () => number;

function pad2(value: number): string {
  return value < 10 ? `0${value}` : `${value}`;
}

function pad3(value: number): string {
  return value < 10 ? `00${value}` : value < 100 ? `0${value}` : `${value}`;
}

/**
 * Formats local-time timestamps. The text up to the second is computed once per second; only
 * the milliseconds are added per call, which keeps `Date` work off the per-connection path.
 */
export class Timestamps {
  #second = NaN;
  #text = "";
  #iso = "";
  #offset = "";

  #update(second: number): void {
    const date = new Date(second * 1000);
    const day = `${date.getFullYear()}-${pad2(date.getMonth() + 1)}-${pad2(date.getDate())}`;
    const time = `${pad2(date.getHours())}:${pad2(date.getMinutes())}:${pad2(date.getSeconds())}`;
    const minutes = -date.getTimezoneOffset();
    const sign = minutes < 0 ? "-" : "+";
    const abs = Math.abs(minutes);
    this.#second = second;
    this.#text = `${day} ${time}.`;
    this.#iso = `${day}T${time}.`;
    this.#offset = `${sign}${pad2(Math.floor(abs / 60))}:${pad2(abs % 60)}`;
  }

  /** `2026-11-25 08:01:02.345`: the classic format, local time with milliseconds. */
  text(ms: number): string {
    const second = Math.floor(ms / 1000);
    if (second !== this.#second) this.#update(second);
    return this.#text + pad3(ms - second * 1000);
  }

  /** `2026-11-25T08:01:02.345+01:00`: RFC 3339, local time with its offset. */
  rfc3339(ms: number): string {
    const second = Math.floor(ms / 1000);
    if (second !== this.#second) this.#update(second);
    return this.#iso + pad3(ms - second * 1000) + this.#offset;
  }
}
