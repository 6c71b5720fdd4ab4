/**
 * Country and autonomous system of an address from a MaxMind-format database (GeoLite2 Country,
 * City or ASN, DB-IP lite, ip-location-db), read locally with mmdb-lib: never downloaded, never
 * looked up online.
 */
import { Buffer } from "node:buffer";
import { Reader, type Response as MmdbRecord } from "mmdb-lib";
import { isOsError, reason, withMessage } from "../errors.ts";

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
  country?: { iso_code?: unknown };
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

/** A MaxMind-format database opened for look-ups. */
export class GeoDatabase {
  #reader: Reader<MmdbRecord>;

  private constructor(reader: Reader<MmdbRecord>) {
    this.#reader = reader;
  }

  /**
   * Opens the database at `path`.
   *
   * @throws {Deno.errors.NotFound} (and other OS errors) when the file cannot be read, or
   *   {Deno.errors.InvalidData} when it is not a MaxMind-format database; messages for the user.
   */
  static open(path: string): GeoDatabase {
    let bytes: Uint8Array;
    try {
      bytes = Deno.readFileSync(path);
    } catch (error) {
      if (!isOsError(error)) throw error;
      throw withMessage(error, `Cannot read GeoIP database "${path}": ${reason(error)}`);
    }
    try {
      const reader = new Reader<MmdbRecord>(
        Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength),
      );
      // A file with a metadata section but a broken tree fails only on look-up: try one now.
      reader.get("0.0.0.0");
      return new GeoDatabase(reader);
    } catch (error) {
      throw new Deno.errors.InvalidData(
        `Cannot read GeoIP database "${path}": not a MaxMind-format database (${reason(error)})`,
      );
    }
  }

  /** What the database knows about `address` (nothing for an address it cannot parse). */
  lookup(address: string): GeoInfo {
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
    return {
      country: text(record.country?.iso_code) ?? text(record.country_code) ??
        text(record.registered_country?.iso_code),
      asNumber: typeof asNumber === "number" ? asNumber : null,
      asOrganization: text(record.autonomous_system_organization),
    };
  }
}
