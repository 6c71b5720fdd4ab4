/** Writes every byte to a writer whose `write` may take only part of them (a socket, a pipe). */

/** A stream that takes bytes and says how many it took: `Deno.Conn`, `Deno.stdout`. */
export interface PartialWriter {
  /** Writes some of `bytes`; resolves to how many. */
  write(bytes: Uint8Array): Promise<number>;
}

/** Writes all of `bytes` to `writer`, in as many writes as it needs. */
export async function writeAll(writer: PartialWriter, bytes: Uint8Array): Promise<void> {
  let written = 0;
  while (written < bytes.length) written += await writer.write(bytes.subarray(written));
}
