/** Client addresses as the log shows them, made cheaply: this runs once per connection. */

const MAPPED_PREFIX = "::ffff:";

/** Whether a kernel-reported address is an IPv4 client seen through a dual-stack socket. */
export function isMappedIPv4(hostname: string): boolean {
  return hostname.startsWith(MAPPED_PREFIX) && hostname.includes(".");
}

/**
 * The canonical text of a client address as Deno reports it: IPv4 as dotted quad (also when it
 * reached a dual-stack socket as `::ffff:a.b.c.d`), IPv6 as it comes: Deno formats it with
 * Rust's `Ipv6Addr`, which follows RFC 5952, and without a zone id. Only a mapped address is
 * changed, which the accept loop relies on.
 */
export function clientAddress(hostname: string): string {
  return isMappedIPv4(hostname) ? hostname.slice(MAPPED_PREFIX.length) : hostname;
}
