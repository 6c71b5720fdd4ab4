/** One broken worker module for the report's tests. */

/**
 * Writes a module into `dir` that fails as it loads, as a worker missing from a build would;
 * returns its URL.
 */
export async function brokenWorker(dir: string): Promise<URL> {
  const path = `${dir}/broken_worker.ts`;
  await Deno.writeTextFile(path, 'throw new Error("Broken worker");\n');
  return new URL(`file://${path}`);
}
