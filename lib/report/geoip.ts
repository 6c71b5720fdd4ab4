/**
 * Country and autonomous system of an address from a MaxMind-format database (GeoLite2 Country,
 * City or ASN, DB-IP lite, ip-location-db), read locally with mmdb-lib: never downloaded, never
 * looked up online.
 */
import { Buffer } from "node:buffer";
import { Reader, type Response as MmdbRecord } from "mmdb-lib";
import {
  isOsError,
  NotRegularFileError,
  quote,
  reason,
  RuntimeError,
  withMessage,
} from "../errors.ts";
import { type Libc, O_RDONLY, OsError } from "../linux/libc.ts";
import { isNotRegular, openRegularFile } from "../linux/regular_file.ts";
import { isIpAddress } from "./network.ts";

/**
 * The largest database read, in bytes: the database is read into memory whole, and the largest
 * free ones (city-level, with every language's names) are a few hundred MB.
 */
export const GEOIP_MAX_BYTES = 1024 * 1024 * 1024;
/**
 * How long opening the database may take without libc, in milliseconds. A regular file opens at
 * once; a file swapped for a FIFO after it was checked would block the open until a writer
 * comes (Deno has no non-blocking open), so the report gives up and exits instead of hanging.
 */
export const GEOIP_OPEN_TIMEOUT_MS = 10_000;

/** What a database says about one address; `null` where it has nothing. */
export interface GeoInfo {
  /** ISO 3166-1 alpha-2 country code, e.g. `NL`. */
  country: string | null;
  /** Autonomous system number. */
  asNumber: number | null;
  /** Autonomous system organisation. */
  asOrganization: string | null;
}

/** The fields of the record formats in use; all optional. */
interface GeoRecord {
  // MaxMind GeoLite2/GeoIP2 Country and City, DB-IP.
  country?: { iso_code?: unknown; names?: { en?: unknown } };
  registered_country?: { iso_code?: unknown };
  // ip-location-db.
  country_code?: unknown;
  // MaxMind GeoLite2 ASN, ip-location-db asn.
  autonomous_system_number?: unknown;
  autonomous_system_organization?: unknown;
}

const NOTHING: GeoInfo = { country: null, asNumber: null, asOrganization: null };

function text(value: unknown): string | null {
  return typeof value === "string" && value !== "" ? value : null;
}

/** English names of ISO 3166-1 codes, from the ICU data built into Deno. */
const REGION_NAMES = new Intl.DisplayNames(["en"], { type: "region", fallback: "code" });

/** `Netherlands` for `NL`: the English name of a country code, or the code itself. */
export function countryNameOf(code: string): string {
  try {
    return REGION_NAMES.of(code) ?? code;
  } catch {
    // Not a well-formed region code.
    return code;
  }
}

/** Opens `path` for reading, or fails after {@linkcode GEOIP_OPEN_TIMEOUT_MS}. */
async function openWithin(path: string): Promise<Deno.FsFile> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const opening = Deno.open(path);
  try {
    return await Promise.race([
      opening,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => {
            // Should it ever open, close it.
            opening.then((file) => file.close(), () => {});
            reject(
              new RuntimeError(
                `Cannot read GeoIP database ${quote(path)}: it did not open within ${
                  GEOIP_OPEN_TIMEOUT_MS / 1000
                } s (not a regular file?)`,
              ),
            );
          },
          GEOIP_OPEN_TIMEOUT_MS,
        );
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The bytes of the database at `path` through libc (lib/linux/regular_file.ts): opened with
 * O_NONBLOCK, so that nothing can block, and checked on the opened descriptor, so that nothing
 * can be swapped in between; at most {@linkcode GEOIP_MAX_BYTES}.
 */
function readDatabaseWithLibc(path: string, libc: Libc): Uint8Array {
  const fail = (why: string) => `Cannot read GeoIP database ${quote(path)}: ${why}`;
  let opened: ReturnType<typeof openRegularFile>;
  try {
    opened = openRegularFile(libc, path, O_RDONLY);
  } catch (error) {
    if (isNotRegular(error)) throw new NotRegularFileError(fail("not a regular file"));
    if (error instanceof OsError) throw withMessage(error, fail(reason(error)));
    throw error;
  }
  const { file, size } = opened;
  try {
    if (size > GEOIP_MAX_BYTES) {
      throw new RuntimeError(fail(`larger than ${GEOIP_MAX_BYTES / 1024 / 1024} MiB`));
    }
    // One byte past the limit at most: a file that grows meanwhile is still bounded.
    const bytes = new Uint8Array(Math.min(size + 1, GEOIP_MAX_BYTES + 1));
    let length = 0;
    while (length < bytes.length) {
      let n: number | null;
      try {
        n = file.readSync(bytes.subarray(length));
      } catch (error) {
        if (error instanceof OsError) throw withMessage(error, fail(reason(error)));
        throw error;
      }
      if (n === null) break;
      length += n;
    }
    if (length > GEOIP_MAX_BYTES) {
      throw new RuntimeError(fail(`larger than ${GEOIP_MAX_BYTES / 1024 / 1024} MiB`));
    }
    return bytes.subarray(0, length);
  } finally {
    file.close();
  }
}

/**
 * The bytes of the database at `path` without libc (not Linux): a regular file (checked before opening, so that a FIFO
 * or device is never opened, and again on the opened file, so that a file swapped in between is
 * refused) of at most {@linkcode GEOIP_MAX_BYTES}.
 */
async function readDatabase(path: string): Promise<Uint8Array> {
  const fail = (why: string) => `Cannot read GeoIP database ${quote(path)}: ${why}`;
  const check = (info: Deno.FileInfo) => {
    if (info.isDirectory) {
      throw Object.assign(new Deno.errors.IsADirectory(fail("is a directory")), { code: "EISDIR" });
    }
    if (!info.isFile) throw new NotRegularFileError(fail("not a regular file"));
    if (info.size > GEOIP_MAX_BYTES) {
      throw new RuntimeError(fail(`larger than ${GEOIP_MAX_BYTES / 1024 / 1024} MiB`));
    }
  };
  let file: Deno.FsFile | undefined;
  try {
    const before = await Deno.stat(path);
    check(before);
    file = await openWithin(path);
    const opened = await file.stat();
    check(opened);
    if (opened.ino !== before.ino || opened.dev !== before.dev) {
      throw new RuntimeError(fail("it was replaced while opening"));
    }
    // Read at most one byte past the limit: a file that grows meanwhile is still bounded.
    const bytes = new Uint8Array(Math.min(opened.size + 1, GEOIP_MAX_BYTES + 1));
    let length = 0;
    while (length < bytes.length) {
      const n = await file.read(bytes.subarray(length));
      if (n === null) break;
      length += n;
    }
    if (length > GEOIP_MAX_BYTES) {
      throw new RuntimeError(fail(`larger than ${GEOIP_MAX_BYTES / 1024 / 1024} MiB`));
    }
    return bytes.subarray(0, length);
  } catch (error) {
    if (!isOsError(error)) throw error;
    throw withMessage(error, fail(reason(error)));
  } finally {
    file?.close();
  }
}

/** A MaxMind-format database opened for look-ups. */
export class GeoDatabase {
  #reader: Reader<MmdbRecord>;
  /** English country names the database gave, by ISO code (at most one per country). */
  #names = new Map<string, string>();

  private constructor(reader: Reader<MmdbRecord>) {
    this.#reader = reader;
  }

  /**
   * Opens the database at `path`.
   *
   * @throws {Deno.errors.NotFound} (and other OS errors) when the file cannot be read,
   *   {NotRegularFileError} when it is not a regular file, {RuntimeError} when it is too large,
   *   or {Deno.errors.InvalidData} when it is not a MaxMind-format database; messages for the
   *   user. With `libc` (Linux), the file is opened without any race (see
   *   {@linkcode readDatabaseWithLibc}).
   */
  static async open(path: string, options: { libc?: Libc } = {}): Promise<GeoDatabase> {
    const bytes = options.libc === undefined
      ? await readDatabase(path)
      : readDatabaseWithLibc(path, options.libc);
    try {
      const reader = new Reader<MmdbRecord>(
        Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength),
      );
      // A file with a metadata section but a broken tree fails only on look-up: try one now.
      reader.get("0.0.0.0");
      return new GeoDatabase(reader);
    } catch (error) {
      throw new Deno.errors.InvalidData(
        `Cannot read GeoIP database ${quote(path)}: not a MaxMind-format database (${
          reason(error)
        })`,
      );
    }
  }

  /**
   * What the database knows about `address`: nothing for text that is not an IP address
   * (mmdb-lib would read `1.2.3.4.5.6.7` as 1.2.3.4).
   */
  lookup(address: string): GeoInfo {
    if (!isIpAddress(address)) return NOTHING;
    let record: GeoRecord | null;
    try {
      // The union of mmdb-lib's record types; the fields read are checked one by one.
      record = this.#reader.get(address) as GeoRecord | null;
    } catch {
      // mmdb-lib throws on an address it cannot parse; the report shows it without geo data.
      return NOTHING;
    }
    if (record === null) return NOTHING;
    const asNumber = record.autonomous_system_number;
    const country = text(record.country?.iso_code) ?? text(record.country_code) ??
      text(record.registered_country?.iso_code);
    const name = text(record.country?.names?.en);
    if (country !== null && name !== null && record.country?.iso_code === country) {
      this.#names.set(country, name);
    }
    return {
      country,
      asNumber: typeof asNumber === "number" ? asNumber : null,
      asOrganization: text(record.autonomous_system_organization),
    };
  }

  /**
   * The English name of `code`: the database's (`country.names.en`, as GeoLite2 has them) when
   * a look-up gave one, else {@linkcode countryNameOf}'s.
   */
  countryName(code: string): string {
    return this.#names.get(code) ?? countryNameOf(code);
  }
}
