/**
 * Compiles net-bouncer into a standalone binary for every release target:
 * `deno task compile:all` (add `--dry-run` to print the command lines without running them).
 *
 * The flags come from deno.json's `compile` task, so the release binaries are built exactly as
 * `deno task compile` builds the local one (one definition); only `--target` and `--output`
 * differ per target.
 */
import { fileURLToPath } from "node:url";

/** The targets released: every platform GitHub has a runner for to smoke-test the binary. */
export const TARGETS: readonly string[] = [
  "x86_64-unknown-linux-gnu",
  "aarch64-unknown-linux-gnu",
  "x86_64-apple-darwin",
  "aarch64-apple-darwin",
  "x86_64-pc-windows-msvc",
];

/** The project root (absolute path, with a trailing slash). */
export const ROOT: string = fileURLToPath(new URL("..", import.meta.url));

/** Directory the binaries are written to, relative to the project root. */
export const DIST_DIR = "dist";

/** The `compile` task split into words: `deno compile <flags...> main.ts`. */
export function compileTaskWords(configText?: string): string[] {
  const config = JSON.parse(configText ?? Deno.readTextFileSync(`${ROOT}deno.json`));
  const task = config?.tasks?.compile;
  if (typeof task !== "string") throw new Error("deno.json has no `compile` task");
  // The task is a plain word list (no quotes or shell syntax), so splitting on spaces is exact.
  if (/["'`$;&|<>\\]/.test(task)) throw new Error(`compile task has shell syntax: ${task}`);
  const words = task.trim().split(/\s+/);
  if (words[0] !== "deno" || words[1] !== "compile") {
    throw new Error(`compile task does not start with "deno compile": ${task}`);
  }
  return words;
}

/**
 * The `compile` task's flags without its `--output` (every target gets its own) and its entry
 * point, which is returned separately: the flags the binary runs with, which `deno run` takes
 * too. The modules it embeds besides the entry's graph (`--include`: the report's worker) come
 * apart, as `include`.
 */
export function compileFlags(
  configText?: string,
): { flags: string[]; entry: string; include: string[] } {
  const words = compileTaskWords(configText).slice(2);
  const entry = words.pop();
  if (!entry || entry.startsWith("-")) throw new Error("compile task names no entry point");
  const flags: string[] = [];
  const include: string[] = [];
  for (let i = 0; i < words.length; i++) {
    const word = words[i];
    if (word === "--output" || word === "-o") {
      i++; // Skip the value too.
    } else if (word === "--include") {
      include.push(words[++i]);
    } else if (word.startsWith("--include=")) {
      include.push(word.slice("--include=".length));
    } else if (!word.startsWith("--output=") && !word.startsWith("-o=")) {
      flags.push(word);
    }
  }
  return { flags, entry, include };
}

/** The output file for a target (Windows binaries need the .exe suffix). */
export function outputFor(target: string): string {
  const suffix = target.includes("windows") ? ".exe" : "";
  return `${DIST_DIR}/net-bouncer-${target}${suffix}`;
}

/**
 * The planned command lines, one argv per target: `[deno, "compile", ...flags, ...include,
 * "--target", T,
 * "--output", dist/net-bouncer-T, entry]`, run from the project root.
 */
export function plannedCommands(
  options: { deno?: string; configText?: string; targets?: readonly string[] } = {},
): string[][] {
  const deno = options.deno ?? Deno.execPath();
  const { flags, entry, include } = compileFlags(options.configText);
  return (options.targets ?? TARGETS).map((target) => [
    deno,
    "compile",
    ...flags,
    ...include.flatMap((path) => ["--include", path]),
    // --target right before --output/entry: deno rejects an unknown target as it parses it.
    "--target",
    target,
    "--output",
    outputFor(target),
    entry,
  ]);
}

/** Quotes a word for display in a POSIX shell when it needs it. */
function shellQuote(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", "'\\''")}'`;
}

/** Runs the plan (or prints it with `--dry-run`); returns the exit code. */
async function main(args: string[]): Promise<number> {
  const unknown = args.filter((arg) => arg !== "--dry-run");
  if (unknown.length > 0) {
    console.error(`compile_all: error: unknown argument ${unknown[0]} (usage: [--dry-run])`);
    return 2;
  }
  const plan = plannedCommands();
  if (args.includes("--dry-run")) {
    for (const argv of plan) console.log(argv.map(shellQuote).join(" "));
    return 0;
  }
  const deno = plan[0][0];
  // `--allow-run=deno` grants the `deno` found on PATH; when that is a symlink to another path
  // Deno does not count it as Deno.execPath(), so say how to run instead of failing obscurely.
  if ((await Deno.permissions.query({ name: "run", command: deno })).state !== "granted") {
    console.error(
      `compile_all: error: no permission to run ${deno} (is the deno on PATH a symlink?); run:\n` +
        `  deno run --allow-run=${deno} --allow-read=. scripts/compile_all.ts`,
    );
    return 1;
  }
  for (const [cmd, ...rest] of plan) {
    console.error(`compile_all: ${[cmd, ...rest].map(shellQuote).join(" ")}`);
    const { code } = await new Deno.Command(cmd, { args: rest, cwd: ROOT }).spawn().status;
    if (code !== 0) {
      console.error(`compile_all: error: deno compile exited with ${code}`);
      return code;
    }
  }
  return 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
