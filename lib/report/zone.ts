/** Local time for the report: UTC offsets of one time zone, wall-clock parts and labels. */

const MINUTE_MS = 60_000;
/** Every UTC offset in use is a multiple of 15 minutes, so the offset is constant within one. */
const SLOT_MS = 15 * MINUTE_MS;
/** The zone used when the system's (or the given) time zone is unknown to Intl. */
export const FALLBACK_ZONE = "UTC";
/** The largest instant a `Date` holds, epoch milliseconds (its range is symmetric). */
const DATE_MAX_MS = 8.64e15;
/** 400 Gregorian years are exactly 146,097 days: shifting a date by them keeps its weekday. */
const GREGORIAN_CYCLE_MS = 146_097 * 86_400_000;

/** The wall-clock parts of an instant in a time zone. */
export interface LocalParts {
  year: number;
  /** 1-12. */
  month: number;
  day: number;
  hour: number;
  minute: number;
  second: number;
  millisecond: number;
  /** Minutes east of UTC. */
  offset: number;
}

/** A wall-clock time; hour and smaller units default to 0. */
export interface WallTime {
  year: number;
  /** 1-12. */
  month: number;
  day: number;
  hour?: number;
  minute?: number;
  second?: number;
  millisecond?: number;
}

function pad2(value: number): string {
  return value < 10 ? `0${value}` : `${value}`;
}

/**
 * `0001`, `2026`: the year in four digits, as log lines and RFC 3339 write it; outside 0-9999
 * the sign and six digits of ISO 8601's expanded years (`+275760`), as `toISOString` writes them.
 */
function yearText(year: number): string {
  if (year >= 0 && year <= 9999) return String(year).padStart(4, "0");
  return `${year < 0 ? "-" : "+"}${String(Math.abs(year)).padStart(6, "0")}`;
}

/**
 * `Date.UTC` without its two-digit-year trap: it reads years 0-99 as 1900-1999, so those are
 * computed 400 years later (the calendar repeats every 400 years) and moved back. `month` is
 * 1-12. Positional like `Date.UTC`, not an options object: the parser calls it per line.
 */
export function utcTime(
  year: number,
  month: number,
  day: number,
  hour = 0,
  minute = 0,
  second = 0,
  millisecond = 0,
): number {
  if (year >= 0 && year <= 99) {
    return Date.UTC(year + 400, month - 1, day, hour, minute, second, millisecond) -
      GREGORIAN_CYCLE_MS;
  }
  return Date.UTC(year, month - 1, day, hour, minute, second, millisecond);
}

/**
 * A time zone: the system's (the one the program writes text log lines in) or a named IANA
 * zone. Offsets come from Intl and are cached per 15-minute slot, so callers may ask per line.
 */
export class Zone {
  /** The IANA name, e.g. `Europe/Berlin`; {@linkcode FALLBACK_ZONE} when the zone is unknown. */
  readonly name: string;
  /**
   * Whether the zone asked for was unknown, so that {@linkcode FALLBACK_ZONE} is used instead:
   * an unknown `TZ` (`Foo/Bar`), which the daemon's `Date` treats as UTC too.
   */
  readonly fallback: boolean;
  #format: Intl.DateTimeFormat;
  // Bounded by the slots of the period a report covers (a year is 35,040 entries).
  #offsets = new Map<number, number>();

  /** The zone `name`, or the system's time zone; UTC when that is unknown. */
  constructor(name?: string) {
    let format = zoneFormat(name);
    // An unknown TZ gives no zone at all (undefined), an empty one "Etc/Unknown".
    const resolved = format?.resolvedOptions().timeZone;
    this.fallback = format === null || resolved === undefined || resolved === "Etc/Unknown";
    if (this.fallback) format = zoneFormat(FALLBACK_ZONE);
    this.#format = format!;
    this.name = this.fallback ? FALLBACK_ZONE : resolved!;
  }

  /** Minutes east of UTC at the instant `ms`. */
  offsetAt(ms: number): number {
    const slot = Math.floor(ms / SLOT_MS);
    let offset = this.#offsets.get(slot);
    if (offset === undefined) {
      // Intl throws outside Date's range (a 15-minute slot may reach past its end).
      const at = Math.min(Math.max(slot * SLOT_MS, -DATE_MAX_MS), DATE_MAX_MS);
      // "GMT+01:00", or "GMT" for UTC itself.
      const text = this.#format.formatToParts(at)
        .find((part) => part.type === "timeZoneName")?.value ?? "GMT";
      const match = /^GMT([+-])(\d\d):(\d\d)$/.exec(text);
      offset = match === null
        ? 0
        : (match[1] === "-" ? -1 : 1) * (Number(match[2]) * 60 + Number(match[3]));
      this.#offsets.set(slot, offset);
    }
    return offset;
  }

  /**
   * The instant of a wall-clock time. A time that occurs twice (the hour repeated when clocks go
   * back) gives the earlier instant; a time skipped when clocks go forward is moved forward by
   * the gap, as JavaScript's `Date` does. Days past the month's end roll over (`day + 1`).
   */
  toUtc(wall: WallTime): number {
    const { year, month, day, hour = 0, minute = 0, second = 0, millisecond = 0 } = wall;
    const asUtc = utcTime(year, month, day, hour, minute, second, millisecond);
    // Offsets before and after a possible transition near this wall time.
    const before = this.offsetAt(asUtc - 14 * 3_600_000);
    const after = this.offsetAt(asUtc + 14 * 3_600_000);
    if (before === after) return asUtc - before * MINUTE_MS;
    const early = asUtc - before * MINUTE_MS;
    if (this.offsetAt(early) === before) return early;
    const late = asUtc - after * MINUTE_MS;
    if (this.offsetAt(late) === after) return late;
    // In the gap: the wall time does not exist; move it forward by the gap.
    return asUtc - before * MINUTE_MS;
  }

  /** The wall-clock parts of `ms`. */
  parts(ms: number): LocalParts {
    const offset = this.offsetAt(ms);
    const date = new Date(ms + offset * MINUTE_MS);
    return {
      year: date.getUTCFullYear(),
      month: date.getUTCMonth() + 1,
      day: date.getUTCDate(),
      hour: date.getUTCHours(),
      minute: date.getUTCMinutes(),
      second: date.getUTCSeconds(),
      millisecond: date.getUTCMilliseconds(),
      offset,
    };
  }

  /** The start of the local hour that holds `ms`. */
  hourStart(ms: number): number {
    const offsetMs = this.offsetAt(ms) * MINUTE_MS;
    return Math.floor((ms + offsetMs) / 3_600_000) * 3_600_000 - offsetMs;
  }

  /** The start of the local day that holds `ms` (local midnight, or the first instant after). */
  dayStart(ms: number): number {
    const { year, month, day } = this.parts(ms);
    return this.toUtc({ year, month, day });
  }

  /** `2026-11-25`: the local date. */
  date(ms: number): string {
    const p = this.parts(ms);
    return `${yearText(p.year)}-${pad2(p.month)}-${pad2(p.day)}`;
  }

  /** `2026-11-25 08:01:02`: local date and time to the second. */
  dateTime(ms: number): string {
    const p = this.parts(ms);
    return `${yearText(p.year)}-${pad2(p.month)}-${pad2(p.day)} ${pad2(p.hour)}:${pad2(p.minute)}:${
      pad2(p.second)
    }`;
  }

  /** `2026-11-25T08:01:02+01:00`: RFC 3339 local time with its offset, to the second. */
  rfc3339(ms: number): string {
    const p = this.parts(ms);
    const abs = Math.abs(p.offset);
    const offset = `${p.offset < 0 ? "-" : "+"}${pad2(Math.floor(abs / 60))}:${pad2(abs % 60)}`;
    return `${yearText(p.year)}-${pad2(p.month)}-${pad2(p.day)}T${pad2(p.hour)}:${pad2(p.minute)}:${
      pad2(p.second)
    }${offset}`;
  }
}

/** The formatter that tells a zone's offsets, or `null` when Intl does not know `name`. */
function zoneFormat(name: string | undefined): Intl.DateTimeFormat | null {
  try {
    return new Intl.DateTimeFormat("en-US", {
      timeZone: name,
      timeZoneName: "longOffset",
      year: "numeric",
    });
  } catch (error) {
    if (error instanceof RangeError) return null;
    throw error;
  }
}
