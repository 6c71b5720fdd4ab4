/**
 * The compile tasks, without running `deno compile` (it downloads its runtime from a host that
 * neither this machine nor CI reaches; the release workflow runs it): the `compile` task and every
 * command line scripts/compile_all.ts plans are valid `deno compile` command lines, build with the
 * production permissions, and embed nothing the program does not need.
 */
import assert from "node:assert/strict";
import {
  compileFlags,
  compileTaskWords,
  plannedCommands,
  TARGETS,
} from "../../scripts/compile_all.ts";
import { ROOT, run, type RunResult } from "../_util.ts";

const CONFIG = JSON.parse(Deno.readTextFileSync(`${ROOT}deno.json`));
/** A value deno compile's --target cannot accept: clap rejects it while parsing (no download). */
const INVALID_TARGET = "not-a-target";
/** Flags the `start` task has that are not permissions and make no sense for `deno compile`. */
const START_ONLY_FLAGS = new Set<string>();
/**
 * Global flags, which every subcommand takes (`deno --help` documents them): --quiet, which
 * `deno compile` also stores in the binary, hides Deno's own diagnostics, such as the FFI
 * warnings printed per function where V8 runs without its JIT.
 */
const GLOBAL_FLAGS = ["--quiet", "-q"];
/** Flags `compile` has that are specific to the subcommand (where the binary goes). */
const COMPILE_ONLY_FLAGS = new Set(["--output", "-o", "--include"]);

/** Runs deno with `args` in the project root; returns exit code and output (no colours). */
function deno(args: string[]): Promise<RunResult> {
  return run(Deno.execPath(), args, { cwd: ROOT, env: { NO_COLOR: "1" } });
}

/** The flag names (`--x` and `-x`) that `deno compile --help` documents. */
async function documentedFlags(): Promise<Set<string>> {
  const { code, stdout } = await deno(["compile", "--help"]);
  assert.equal(code, 0);
  const flags = new Set<string>();
  for (const match of stdout.matchAll(/^\s+(?:(-[A-Za-z]), )?(--[a-z][a-z0-9-]*)/gm)) {
    if (match[1]) flags.add(match[1]);
    flags.add(match[2]);
  }
  for (const flag of GLOBAL_FLAGS) flags.add(flag);
  // The help text always has these; fewer would mean the parsing above broke.
  for (const flag of ["--output", "--target", "--include", "--permission-set", "--no-prompt"]) {
    assert.ok(flags.has(flag), `${flag} not found in deno compile --help`);
  }
  return flags;
}

/** The --target values deno compile accepts (clap lists them when it rejects a value). */
async function acceptedTargets(): Promise<string[]> {
  const { code, stderr } = await deno(["compile", "--target", INVALID_TARGET, "main.ts"]);
  assert.notEqual(code, 0);
  const match = stderr.match(/possible values: ([^\n]+)/);
  assert.ok(match, `no list of possible --target values in:\n${stderr}`);
  return match[1].split(",").map((value) => value.trim());
}

/** The flag name of a word (`--permission-set=x` -> `--permission-set`), or null for a value. */
function flagName(word: string): string | null {
  return word.startsWith("-") ? word.split("=")[0] : null;
}

/** The words of a command line after `deno compile`, without the entry point (the last word). */
function flagWords(argv: string[]): string[] {
  assert.equal(argv[1], "compile");
  return argv.slice(2, -1);
}

/** Command lines under test: the `compile` task, then each planned line of compile_all. */
function commandLines(): { name: string; argv: string[] }[] {
  return [
    { name: "task compile", argv: compileTaskWords() },
    ...plannedCommands().map((argv) => ({ name: `compile_all ${argv.at(-4)}`, argv })),
  ];
}

Deno.test("every flag of the compile command lines is one deno compile --help documents", async () => {
  const documented = await documentedFlags();
  for (const { name, argv } of commandLines()) {
    for (const word of flagWords(argv)) {
      const flag = flagName(word);
      if (flag) assert.ok(documented.has(flag), `${name}: ${flag} is not a deno compile flag`);
    }
  }
});

Deno.test("every planned --target is one deno compile accepts, and all five are planned", async () => {
  const accepted = await acceptedTargets();
  console.log(`deno compile accepts: ${accepted.join(", ")}`);
  const planned = plannedCommands().map((argv) => argv[argv.indexOf("--target") + 1]);
  assert.deepEqual(planned, [...TARGETS]);
  assert.equal(new Set(planned).size, 5);
  for (const target of planned) assert.ok(accepted.includes(target), `unknown target ${target}`);
  // One output file per target, all distinct, in dist/.
  const outputs = plannedCommands().map((argv) => argv[argv.indexOf("--output") + 1]);
  assert.equal(new Set(outputs).size, outputs.length);
  for (const [i, output] of outputs.entries()) {
    assert.match(output, /^dist\/net-bouncer-[a-z0-9_-]+(\.exe)?$/);
    assert.equal(output.endsWith(".exe"), planned[i].includes("windows"), output);
  }
});

Deno.test("deno itself parses each command line up to its --target (no download started)", async () => {
  // clap parses left to right: with an invalid --target as the last flag, an error naming that
  // value proves every flag before it was accepted; clap exits before any download.
  for (const { name, argv } of commandLines()) {
    const flags = flagWords(argv);
    const targetAt = flags.indexOf("--target");
    const before = targetAt >= 0 ? flags.slice(0, targetAt) : flags;
    const { code, stderr } = await deno(["compile", ...before, "--target", INVALID_TARGET, "x.ts"]);
    assert.notEqual(code, 0);
    assert.match(stderr, new RegExp(`invalid value '${INVALID_TARGET}' for '--target'`), name);
  }
});

Deno.test("the permission set the compile tasks name exists in deno.json", () => {
  for (const { name, argv } of commandLines()) {
    const flags = flagWords(argv);
    const sets = flags.flatMap((word, i) => {
      if (word.startsWith("--permission-set=")) return [word.slice("--permission-set=".length)];
      if (word === "--permission-set" || word === "-P") return [flags[i + 1]];
      return [];
    });
    assert.deepEqual(sets, ["net-bouncer"], `${name} names one permission set`);
    const set = CONFIG.permissions?.[sets[0]];
    assert.ok(set && typeof set === "object", `deno.json has no permission set ${sets[0]}`);
  }
});

Deno.test("compile flags equal the start flags except the subcommand-specific ones", () => {
  // The start task is `deno run <flags...> main.ts`; tests and benchmarks run the compile task's.
  const [, subcommand, ...startFlags] = String(CONFIG.tasks.start).trim().split(/\s+/).slice(0, -1);
  assert.equal(subcommand, "run");
  const start = startFlags.filter((word) => !START_ONLY_FLAGS.has(word));
  const compile = compileTaskWords().slice(2, -1);
  const compileKept: string[] = [];
  for (let i = 0; i < compile.length; i++) {
    const flag = flagName(compile[i]);
    if (flag && COMPILE_ONLY_FLAGS.has(flag)) {
      if (!compile[i].includes("=")) i++; // Its value too.
    } else {
      compileKept.push(compile[i]);
    }
  }
  console.log(`start flags: ${startFlags.join(" ")}\ncompile flags: ${compile.join(" ")}`);
  assert.deepEqual([...compileKept].sort(), [...start].sort());
  // compile_all reuses the same flags: one definition for all binaries.
  for (const argv of plannedCommands()) {
    const flags = flagWords(argv);
    assert.deepEqual(flags.slice(0, compileFlags().flags.length), compileFlags().flags);
  }
  // No blanket permissions in the binary.
  for (const word of [...compile, ...start]) {
    assert.ok(!/^(-A|--allow-all)$/.test(word), `blanket permission ${word}`);
  }
});

/** What `--include` embeds: the report's worker, which no import names (a Worker's URL). */
const INCLUDED = ["lib/report/count_worker.ts"];

Deno.test("nothing is embedded that the program does not need", async () => {
  // No extra files are included by flag; the one module included is the worker, which exists
  // and is what lib/report/count_in_worker.ts starts.
  for (const { name, argv } of commandLines()) {
    const words = flagWords(argv);
    const included: string[] = [];
    for (let i = 0; i < words.length; i++) {
      if (words[i] === "--include") included.push(words[++i]);
      else assert.ok(!/^--(include|env-file|icon)(=|$)/.test(words[i]), `${name}: ${words[i]}`);
    }
    assert.deepEqual(included, INCLUDED, name);
  }
  assert.deepEqual(compileFlags().include, INCLUDED);
  for (const path of INCLUDED) {
    assert.ok(Deno.statSync(`${ROOT}${path}`).isFile, path);
    const starter = Deno.readTextFileSync(`${ROOT}lib/report/count_in_worker.ts`);
    assert.ok(starter.includes(`new URL("./${path.split("/").at(-1)}", import.meta.url)`), path);
  }
  // A node_modules directory would be embedded whole.
  assert.equal(CONFIG.nodeModulesDir ?? "none", "none");
  assert.equal(CONFIG.vendor ?? false, false);

  // The module graph: main.ts, lib/, deno.json (the version) and the import map's npm packages.
  const { code, stdout, stderr } = await deno(["info", "--json", "main.ts"]);
  assert.equal(code, 0, stderr);
  const info = JSON.parse(stdout);
  const rootUrl = new URL(`file://${ROOT}`).href;
  const importMapPackages = new Set(
    Object.values(CONFIG.imports as Record<string, string>)
      .filter((spec) => spec.startsWith("npm:"))
      .map((spec) => spec.slice(4).replace(/@[^@/]*$/, "")),
  );
  const local: string[] = [];
  for (const module of info.modules as { specifier: string; kind: string }[]) {
    const spec = module.specifier;
    if (module.kind === "npm" || module.kind === "node") continue; // Checked below / built in.
    assert.ok(spec.startsWith(rootUrl), `module from outside the project: ${spec}`);
    const path = spec.slice(rootUrl.length);
    assert.match(
      path,
      /^(main\.ts|deno\.json|lib\/([\w-]+\/)?[\w-]+\.ts)$/,
      `unexpected module ${path}`,
    );
    local.push(path);
  }
  assert.ok(local.includes("main.ts"));
  const npmPackages = Object.values(info.npmPackages as Record<string, { name: string }>);
  for (const pkg of npmPackages) {
    assert.ok(importMapPackages.has(pkg.name), `npm package not in the import map: ${pkg.name}`);
  }
  // deno compile embeds the lockfile's whole npm snapshot (unless --exclude-unused-npm): it must
  // hold only packages main.ts reaches.
  const lock = JSON.parse(Deno.readTextFileSync(`${ROOT}deno.lock`));
  const reached = new Set(Object.keys(info.npmPackages));
  for (const locked of Object.keys(lock.npm ?? {})) {
    assert.ok(reached.has(locked), `deno.lock has ${locked}, which main.ts does not import`);
  }
  for (const locked of Object.keys(lock.jsr ?? {})) {
    assert.fail(`deno.lock has jsr package ${locked}, which main.ts does not import`);
  }
  console.log(`embedded modules (${local.length}): ${local.sort().join(", ")}`);
  console.log(`embedded npm packages: ${Object.keys(info.npmPackages).sort().join(", ")}`);
});
