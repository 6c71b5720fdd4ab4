/**
 * The Debian package (scripts/package.ts, contrib/debian, contrib/man): built from a stand-in
 * executable (a shell script that runs this checkout's main.ts with the production flags, since
 * `deno compile` cannot run here), its contents, modes and conffiles read back with dpkg-deb,
 * lintian, the man page against `--help`, the release workflow's .deb steps, and the real
 * install, upgrade and purge under systemd in a container.
 */
import assert from "node:assert/strict";
import { gunzipSync } from "node:zlib";
import {
  BINARY_PATH,
  buildPackage,
  changelogFor,
  CONFFILES,
  debFileName,
  dependsOf,
  DOC_DIR,
  EXAMPLES,
  hasInstallSection,
  hostArch,
  LINTIAN_OVERRIDES,
  MAN_PAGE,
  PackageError,
  RECOMMENDED_UNIT,
  rewriteUnit,
  TARBALL_BINARY_PATH,
  UNIT_DIR,
  unitNames,
} from "../../scripts/package.ts";
import { outputFor, TARGETS } from "../../scripts/compile_all.ts";
import {
  bootContainer,
  type Container,
  installProgram,
  MOUNT_BASE,
  PROGRAM_PATH,
} from "../_container.ts";
import {
  DEADLINE_MS,
  needsTools,
  productionRunArgs,
  readOrEmpty,
  ROOT,
  run,
  runProgram,
  waitFor,
  withTempDir,
} from "../_util.ts";

/** The version in deno.json (the package's default version). */
const VERSION: string = JSON.parse(Deno.readTextFileSync(`${ROOT}deno.json`)).version;
/** Deadline of one lintian run, in milliseconds (it takes about 10 s on the stand-in package). */
const LINTIAN_TIMEOUT_MS = 120_000;

/**
 * A stand-in for the compiled binary: a script that runs this checkout's main.ts with the
 * production flags of deno.json's start task (and that deno.json, whatever the working
 * directory).
 */
function standInScript(options: { root?: string; deno?: string; denoDir?: string } = {}): string {
  const root = options.root ?? ROOT;
  const quote = (word: string) => `'${word.replaceAll("'", "'\\''")}'`;
  const env = options.denoDir ? `DENO_DIR=${quote(options.denoDir)} ` : "";
  const words = [
    options.deno ?? Deno.execPath(),
    "run",
    `--config=${root}deno.json`,
    ...productionRunArgs(),
    `${root}main.ts`,
  ];
  return `#!/bin/sh\n${env}exec ${words.map(quote).join(" ")} "$@"\n`;
}

/** Writes the stand-in executable into `dir`; returns its path. */
async function writeStandIn(dir: string, options: Parameters<typeof standInScript>[0] = {}) {
  const path = `${dir}/net-bouncer`;
  await Deno.writeTextFile(path, standInScript(options));
  await Deno.chmod(path, 0o755);
  return path;
}

/** Runs a command that must succeed; returns its standard output. */
async function ok(cmd: string, args: string[], options: { cwd?: string } = {}): Promise<string> {
  const result = await run(cmd, args, options);
  assert.equal(result.code, 0, `${cmd} ${args.join(" ")}: ${result.stderr}`);
  return result.stdout;
}

/** One entry of `dpkg-deb --contents`. */
interface Entry {
  mode: string;
  owner: string;
  size: number;
  path: string;
}

/** Parses `dpkg-deb --contents` (tar -tv lines): mode, owner, size and path (no "../"). */
async function contentsOf(deb: string): Promise<Entry[]> {
  const text = await ok("dpkg-deb", ["--contents", deb]);
  return text.trim().split("\n").map((line) => {
    const [mode, owner, size, , , path] = line.split(/\s+/);
    return { mode, owner, size: Number(size), path: path.replace(/^\./, "").replace(/\/$/, "") };
  });
}

/** Builds the stand-in package of deno.json's version into `dir`; returns the .deb's path. */
async function buildStandIn(dir: string, options: { version?: string } = {}): Promise<string> {
  const binary = await writeStandIn(dir);
  return await buildPackage(binary, `${dir}/out`, { version: options.version });
}

Deno.test("unit files: /usr/local/bin rewritten to /usr/bin, [Install] detected", () => {
  const unit =
    "[Service]\nExecStart=/usr/local/bin/net-bouncer $ARGS\n# /usr/local/bin/net-bouncer\n";
  assert.equal(
    rewriteUnit(unit),
    "[Service]\nExecStart=/usr/bin/net-bouncer $ARGS\n# /usr/bin/net-bouncer\n",
  );
  assert.equal(hasInstallSection("[Service]\nType=simple\n"), false);
  assert.equal(hasInstallSection("[Service]\nType=simple\n[Install]\n"), false);
  assert.equal(hasInstallSection("[Install]\nWantedBy=multi-user.target\n"), true);
  assert.equal(hasInstallSection("[Install]\n# none\n[X-Other]\nA=b\n"), false);
  // The recommended unit can be enabled: deb-systemd-helper enables nothing without [Install].
  const text = Deno.readTextFileSync(`${ROOT}contrib/systemd/${RECOMMENDED_UNIT}`);
  assert.ok(hasInstallSection(text), `${RECOMMENDED_UNIT} has no [Install] section`);
});

Deno.test("changelog: an entry for a version it lacks, the file as it is otherwise", () => {
  const text = Deno.readTextFileSync(`${ROOT}contrib/debian/changelog`);
  assert.match(text, new RegExp(`^net-bouncer \\(${VERSION.replaceAll(".", "\\.")}\\) `));
  assert.equal(changelogFor(text, VERSION, new Date()), text);
  const newer = changelogFor(text, "9.8.7", new Date(Date.UTC(2026, 10, 5, 6, 7, 8)));
  assert.ok(newer.endsWith(`\n\n${text}`));
  assert.match(
    newer,
    /^net-bouncer \(9\.8\.7\) unstable; urgency=medium\n\n {2}\* .+\n\n -- .+ <.+> {2}Thu, 05 Nov 2026 06:07:08 \+0000\n/,
  );
});

Deno.test("copyright: names every npm package that the binary embeds (main.ts's module graph)", async () => {
  const info = JSON.parse(await ok(Deno.execPath(), ["info", "--json", `${ROOT}main.ts`]));
  const packages = (info.modules as { kind: string; specifier: string }[])
    .filter((module) => module.kind === "npm")
    .map((module) => module.specifier.replace(/^npm:\/?/, "").replace(/@[^@]+$/, ""));
  assert.ok(packages.length > 0, "no npm package in the graph: is deno info's format the same?");
  const copyright = Deno.readTextFileSync(`${ROOT}contrib/debian/copyright`);
  assert.match(
    copyright,
    /^Format: https:\/\/www\.debian\.org\/doc\/packaging-manuals\/copyright-format\/1\.0\/$/m,
  );
  for (const name of packages) {
    assert.ok(
      copyright.includes(`npm package ${name} `),
      `${name} is not in contrib/debian/copyright`,
    );
  }
});

Deno.test({
  name: "Depends: of an ELF binary is its libraries' packages at its newest symbol versions",
  ignore: needsTools("readelf"),
  async fn() {
    // The deno executable is what `deno compile` wraps: the same libraries.
    const depends = await dependsOf(Deno.execPath());
    assert.match(depends, /^libc6 \(>= 2\.\d+\)(, libgcc-s1( \(>= \d+(\.\d+)*\))?)?$/);
    await withTempDir(async (dir) => {
      assert.equal(await dependsOf(await writeStandIn(dir)), "");
    });
  },
});

Deno.test("package: bad inputs are one-line errors", async () => {
  await withTempDir(async (dir) => {
    await assert.rejects(
      buildPackage(`${dir}/missing`, dir),
      (error) =>
        error instanceof PackageError &&
        error.message === `Cannot read binary "${dir}/missing": no such file`,
    );
    const binary = await writeStandIn(dir);
    await assert.rejects(
      buildPackage(binary, dir, { version: "1.0-rc 1" }),
      /Invalid version "1\.0-rc 1"/,
    );
    await assert.rejects(buildPackage(binary, dir, { arch: "AMD64" }), /Invalid arch "AMD64"/);
    const result = await run(Deno.execPath(), ["task", "package", "--arch", "amd64"], {
      cwd: ROOT,
    });
    assert.equal(result.code, 2);
    assert.match(result.stderr, /^package: error: Missing "--binary FILE" \(usage: /m);
    const unknown = await run(Deno.execPath(), ["task", "package", "--bogus"], { cwd: ROOT });
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /^package: error: Unknown option "--bogus" \(usage: /m);
  });
});

Deno.test({
  name: "package: contents, modes, owners, conffiles, units at /usr/bin, control fields",
  ignore: needsTools("dpkg-deb", "gzip"),
  async fn() {
    await withTempDir(async (dir) => {
      const deb = await buildStandIn(dir);
      assert.equal(deb, `${dir}/out/${debFileName(VERSION, hostArch())}`);
      const entries = await contentsOf(deb);
      const files = entries.filter((entry) => !entry.mode.startsWith("d"));
      const units = unitNames();
      const expected = [
        BINARY_PATH,
        ...units.map((unit) => `${UNIT_DIR}/${unit}`),
        ...CONFFILES.map(([, target]) => target),
        ...EXAMPLES.map(([, target]) => target),
        `${DOC_DIR}/README.md.gz`,
        `${DOC_DIR}/changelog.gz`,
        `${DOC_DIR}/copyright`,
        MAN_PAGE[1],
        LINTIAN_OVERRIDES[1],
      ].sort();
      assert.deepEqual(files.map((entry) => entry.path).sort(), expected);
      for (const entry of entries) {
        assert.equal(entry.owner, "root/root", entry.path);
        const mode = entry.mode.startsWith("d") || entry.path === BINARY_PATH
          ? /^[d-]rwxr-xr-x$/
          : /^-rw-r--r--$/;
        assert.match(entry.mode, mode, entry.path);
      }
      // The socket pair and the file unit are all there, whichever is recommended.
      for (const unit of ["net-bouncer.service", "net-bouncer-journal.service"]) {
        assert.ok(units.includes(unit), unit);
      }

      const tree = `${dir}/tree`;
      await ok("dpkg-deb", ["--extract", deb, tree]);
      const control = `${dir}/control`;
      await ok("dpkg-deb", ["--control", deb, control]);
      assert.equal(
        Deno.readTextFileSync(`${control}/conffiles`),
        CONFFILES.map(([, target]) => target).join("\n") + "\n",
      );
      for (const [source, target] of [...CONFFILES, ...EXAMPLES]) {
        assert.equal(
          Deno.readTextFileSync(`${tree}${target}`),
          Deno.readTextFileSync(`${ROOT}${source}`),
        );
      }
      // Units: as in contrib/systemd but every ExecStart= runs the packaged binary.
      for (const unit of units) {
        const text = Deno.readTextFileSync(`${tree}${UNIT_DIR}/${unit}`);
        assert.ok(
          !text.includes(TARBALL_BINARY_PATH),
          `${unit} still names ${TARBALL_BINARY_PATH}`,
        );
        for (const [, command] of text.matchAll(/^ExecStart=(\S+)/gm)) {
          assert.equal(command, BINARY_PATH, unit);
        }
        if (unit.endsWith(".service")) {
          assert.match(text, new RegExp(`^ExecStart=${BINARY_PATH} `, "m"));
        }
        assert.equal(
          text,
          Deno.readTextFileSync(`${ROOT}contrib/systemd/${unit}`).replaceAll(
            TARBALL_BINARY_PATH,
            BINARY_PATH,
          ),
        );
      }
      assert.equal(
        new TextDecoder().decode(gunzipSync(Deno.readFileSync(`${tree}${MAN_PAGE[1]}`))),
        Deno.readTextFileSync(`${ROOT}${MAN_PAGE[0]}`),
      );
      assert.equal(
        new TextDecoder().decode(gunzipSync(Deno.readFileSync(`${tree}${DOC_DIR}/README.md.gz`))),
        Deno.readTextFileSync(`${ROOT}README.md`),
      );
      assert.equal(
        Deno.readTextFileSync(`${tree}${DOC_DIR}/copyright`),
        Deno.readTextFileSync(`${ROOT}contrib/debian/copyright`),
      );
      assert.equal(
        Deno.readTextFileSync(`${tree}${BINARY_PATH}`),
        Deno.readTextFileSync(`${dir}/net-bouncer`),
      );

      const field = async (name: string) => (await ok("dpkg-deb", ["--field", deb, name])).trim();
      assert.equal(await field("Package"), "net-bouncer");
      assert.equal(await field("Version"), VERSION);
      assert.equal(await field("Architecture"), hostArch());
      assert.equal(await field("Suggests"), "fail2ban, crowdsec");
      // A script needs no shared library (the real binary gets libc6, see dependsOf).
      assert.equal(await field("Depends"), "");
      const installed = Number(await field("Installed-Size"));
      const bytes = files.reduce((sum, entry) => sum + entry.size, 0);
      assert.ok(installed >= bytes / 1024 && installed <= bytes / 1024 + entries.length + 1);

      // Maintainer scripts: filled in, valid sh, the recommended unit and every unit named.
      for (const script of ["preinst", "postinst", "prerm", "postrm"]) {
        const path = `${control}/${script}`;
        assert.equal(Deno.statSync(path).mode! & 0o777, 0o755, script);
        const text = Deno.readTextFileSync(path);
        assert.doesNotMatch(text, /@[A-Z_]+@/, script);
        await ok("sh", ["-n", path]);
      }
      const postinst = Deno.readTextFileSync(`${control}/postinst`);
      assert.match(postinst, new RegExp(`^RECOMMENDED_UNIT=${RECOMMENDED_UNIT}$`, "m"));
      const prerm = Deno.readTextFileSync(`${control}/prerm`);
      for (const unit of units) assert.ok(prerm.includes(unit), `prerm does not stop ${unit}`);
      // md5sums: every file but the conffiles (dpkg tracks those itself).
      const sums = Deno.readTextFileSync(`${control}/md5sums`).trim().split("\n")
        .map((line) => `/${line.split(/\s+/)[1]}`).sort();
      const conffiles = new Set(CONFFILES.map(([, target]) => target));
      assert.deepEqual(sums, expected.filter((path) => !conffiles.has(path)));
    });
  },
});

Deno.test({
  name: "lintian: no error or warning on the package",
  ignore: needsTools("lintian", "dpkg-deb", "gzip"),
  async fn() {
    await withTempDir(async (dir) => {
      const deb = await buildStandIn(dir);
      // Also the informational, pedantic and experimental tags, which the log shows.
      const result = await run("lintian", ["-I", "--pedantic", "-E", deb], {
        timeoutMs: LINTIAN_TIMEOUT_MS,
      });
      const tags = result.stdout.trim().split("\n").filter((line) => /^[A-Z]: /.test(line));
      console.log(`lintian (exit ${result.code}):\n${tags.join("\n") || "(no tags)"}`);
      assert.deepEqual(tags.filter((line) => /^[EW]: /.test(line)), [], result.stdout);
      assert.equal(result.code, 0, result.stderr);
      // lintian really checks: the same package with a file in /etc that is no conffile fails.
      const tree = `${dir}/broken`;
      await ok("dpkg-deb", ["--raw-extract", deb, tree]);
      await Deno.writeTextFile(`${tree}/DEBIAN/conffiles`, "/etc/logrotate.d/net-bouncer\n");
      await ok("dpkg-deb", ["--root-owner-group", "--build", tree, `${dir}/broken.deb`]);
      const broken = await run("lintian", [`${dir}/broken.deb`], { timeoutMs: LINTIAN_TIMEOUT_MS });
      assert.match(broken.stdout, /^E: net-bouncer: file-in-etc-not-marked-as-conffile/m);
    });
  },
});

Deno.test({
  name: "lintian: the package of a real ELF binary has no error or warning but the overridden ones",
  ignore: needsTools("lintian", "dpkg-deb", "gzip", "readelf"),
  async fn() {
    await withTempDir(async (dir) => {
      // The deno executable is the runtime that `deno compile` prefixes to the program: the same
      // libraries, hardening and embedded code that lintian judges in a release binary.
      const deb = await buildPackage(Deno.execPath(), dir, { fast: true });
      assert.match(
        (await ok("dpkg-deb", ["--field", deb, "Depends"])).trim(),
        /^libc6 \(>= 2\.\d+\)/,
      );
      // (--show-overrides would list the overridden tags, but makes lintian exit 2.)
      const result = await run("lintian", ["-I", "--pedantic", deb], {
        timeoutMs: LINTIAN_TIMEOUT_MS,
      });
      const tags = result.stdout.trim().split("\n").filter((line) => /^[A-Z]: /.test(line));
      console.log(`lintian (exit ${result.code}):\n${tags.join("\n")}`);
      assert.deepEqual(tags.filter((line) => /^[EW]: /.test(line)), [], result.stdout);
      assert.equal(result.code, 0, result.stderr);
      // Every override is needed: none is reported unused (the stand-in package has them so).
      assert.deepEqual(tags.filter((line) => line.includes("unused-override")), []);
    });
  },
});

/** Long and short options (`--port`, `-p`, `-4`) named in a text. */
function optionsIn(text: string): Set<string> {
  return new Set(
    [...text.matchAll(/(?<![\w-])(--[a-z][a-z-]*|-[a-zA-Z0-9])(?![\w-])/g)].map((m) => m[1]),
  );
}

/** The options that a `--help` text lists (the first column of its option lines). */
function helpOptions(help: string): string[] {
  return [
    ...new Set(
      help.split("\n").filter((line) => /^\s+-/.test(line)).flatMap((line) => [
        ...optionsIn(line.trim().split(/\s{2,}/)[0]),
      ]),
    ),
  ].sort();
}

/** The options that a section of the rendered man page lists (its tagged paragraphs). */
function sectionOptions(rendered: string, section: string): string[] {
  const text = new RegExp(`^${section}\\n([\\s\\S]*?)^\\S`, "m").exec(rendered)?.[1] ?? "";
  return [
    ...new Set([...text.matchAll(/^ {7}(-\S.*)$/gm)].flatMap((m) => [...optionsIn(m[1])])),
  ].sort();
}

Deno.test({
  name: "man page: renders without a warning and lists exactly the options of both --help texts",
  ignore: needsTools("man"),
  async fn() {
    const source = `${ROOT}${MAN_PAGE[0]}`;
    const result = await run("man", ["--warnings", "-l", source], {
      env: { MANWIDTH: "80", LC_ALL: "C.UTF-8" },
    });
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stderr, "");
    assert.match(result.stdout, /^NAME\n\s+net-bouncer\s+-\s+honeypot/m);
    // man may print hyphens as U+2010 where it breaks lines.
    const rendered = result.stdout.replace(/\u2010/g, "-");

    const help = await runProgram(["--help"]);
    assert.equal(help.code, 0, help.stderr);
    const options = helpOptions(help.stdout);
    assert.ok(options.length >= 10, options.join(" "));
    assert.deepEqual(sectionOptions(rendered, "OPTIONS"), options);

    const report = await runProgram(["report", "--help"]);
    assert.equal(report.code, 0, report.stderr);
    const reportOptions = helpOptions(report.stdout);
    assert.ok(reportOptions.length >= 5, reportOptions.join(" "));
    assert.deepEqual(sectionOptions(rendered, "REPORT"), reportOptions);
  },
});

/** Reads a YAML file as JSON through PyYAML (as tests/system/workflows_test.ts does). */
async function readYaml(path: string): Promise<Record<string, unknown>> {
  const script = "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))";
  return JSON.parse(await ok("python3", ["-c", script, path]));
}

/** The `run:` script of the step named `name` in job `job` of the release workflow. */
async function releaseStep(job: string, name: string): Promise<string> {
  const workflow = await readYaml(`${ROOT}.github/workflows/release.yml`);
  const steps = (workflow.jobs as Record<string, { steps: { name?: string; run?: string }[] }>)[
    job
  ].steps;
  const step = steps.find((candidate) => candidate.name === name);
  assert.ok(step?.run, `no step "${name}" in job ${job}`);
  return step.run;
}

Deno.test({
  name: "release: the .deb step packages both Linux binaries, and SHA256SUMS lists the .debs",
  ignore: needsTools("python3", "dpkg-deb", "gzip", "sha256sum"),
  async fn() {
    await withTempDir(async (dir) => {
      // A checkout stand-in with what `deno task package` reads, and dist/ as compile:all leaves it.
      for (const path of ["deno.json", "README.md", "scripts/package.ts", "contrib"]) {
        await ok("cp", ["-R", "--parents", path, dir], { cwd: ROOT });
      }
      await Deno.mkdir(`${dir}/dist`);
      const binaries = TARGETS.map((target) => outputFor(target));
      for (const binary of binaries) {
        await Deno.writeTextFile(`${dir}/${binary}`, `#!/bin/sh\necho ${binary}\n`);
      }
      const path = `${Deno.execPath().replace(/\/[^/]*$/, "")}:${Deno.env.get("PATH")}`;
      const build = await run("bash", [
        "-eo",
        "pipefail",
        "-c",
        await releaseStep("build", "Debian packages (x86_64 and aarch64)"),
      ], { cwd: dir, env: { PATH: path } });
      assert.equal(build.code, 0, build.stdout + build.stderr);
      const debs = [debFileName(VERSION, "amd64"), debFileName(VERSION, "arm64")];
      const linux = [[debs[0], "x86_64-unknown-linux-gnu"], [debs[1], "aarch64-unknown-linux-gnu"]];
      for (const [deb, target] of linux) {
        const tree = `${dir}/tree-${target}`;
        await ok("dpkg-deb", ["--extract", `${dir}/dist/${deb}`, tree]);
        // Each .deb holds its own architecture's binary.
        assert.equal(
          Deno.readTextFileSync(`${tree}${BINARY_PATH}`),
          Deno.readTextFileSync(`${dir}/${outputFor(target)}`),
        );
        assert.equal(Deno.statSync(`${tree}${BINARY_PATH}`).mode! & 0o777, 0o755);
      }
      assert.equal(
        (await ok("dpkg-deb", ["--field", `${dir}/dist/${debs[1]}`, "Architecture"])).trim(),
        "arm64",
      );

      const sums = await run("bash", [
        "-eo",
        "pipefail",
        "-c",
        await releaseStep("release", "SHA256SUMS"),
      ], { cwd: `${dir}/dist` });
      assert.equal(sums.code, 0, sums.stderr);
      const listed = Deno.readTextFileSync(`${dir}/dist/SHA256SUMS`).trim().split("\n")
        .map((line) => line.split(/\s+/)[1]).sort();
      assert.deepEqual(
        listed,
        [...binaries.map((binary) => binary.replace("dist/", "")), ...debs].sort(),
      );
      const check = await run("sha256sum", ["-c", "SHA256SUMS"], { cwd: `${dir}/dist` });
      assert.equal(check.code, 0, check.stdout + check.stderr);
    });
  },
});

/** A Debian version above deno.json's, for the upgrade ("0.1.0" < "0.1.0+upgrade1"). */
const UPGRADE_VERSION = `${VERSION}+upgrade1`;
/** The log file of the units, read by the fail2ban jail. */
const LOG_FILE = "/var/log/net-bouncer/net-bouncer.log";
/** Deadline of one apt-get run in the container, in milliseconds. */
const APT_TIMEOUT_MS = 120_000;
/**
 * What the container's files are compared on before the install and after the purge: where a
 * package, its maintainer scripts and its units can write (the image is the live machine, whose
 * home directories change with whatever else runs on it).
 */
const SNAPSHOT_DIRS = ["/etc", "/usr", "/var", "/opt", "/srv"];
/**
 * New paths that are no trace of the package: dpkg's, apt's and its hooks' records and logs, the
 * journal, fail2ban's ban database and log, systemd's own state and the private /var/tmp of
 * services it started meanwhile.
 */
const CHURN = [
  /^\/var\/lib\/dpkg\//,
  /^\/var\/log\/(apt|dpkg\.log|alternatives\.log|journal|fail2ban\.log)\b/,
  /^\/var\/cache\/(apt|debconf|man|ldconfig)\b/,
  /^\/var\/lib\/(apt|fail2ban|PackageKit)\b/,
  /^\/var\/lib\/systemd\/(timers|random-seed|linger)\b/,
  /^\/var\/tmp\/systemd-private-/,
  // The images of containers that this machine boots (the container's image is the live machine).
  new RegExp(`^${MOUNT_BASE}/`),
];

/** One connection from `source` (a loopback address of the container) to its port 22. */
async function knockInContainer(container: Container, source: string): Promise<string> {
  // node:net binds the source address before connecting (Deno.connect cannot).
  const script = `
    import net from "node:net";
    const socket = net.connect({ host: "127.0.0.1", port: 22, localAddress: ${
    JSON.stringify(source)
  } });
    let connected = false;
    // A reset after the handshake is the server closing without reading: still "connected".
    socket.on("error", (error) => { if (!connected) console.log(error.code); });
    socket.on("connect", () => { connected = true; console.log("connected"); });
    socket.on("close", () => Deno.exit(0));
    socket.resume();
  `;
  const child = container.spawnInNetwork([Deno.execPath(), "eval", script]);
  child.stdin.close();
  const timer = setTimeout(() => child.kill("SIGKILL"), DEADLINE_MS);
  try {
    const out = await child.output();
    return new TextDecoder().decode(out.stdout).trim();
  } finally {
    clearTimeout(timer);
  }
}

/** The files and directories under SNAPSHOT_DIRS in the container, with type and mode. */
async function snapshot(container: Container): Promise<Set<string>> {
  const out = await container.sh(
    `find ${SNAPSHOT_DIRS.join(" ")} -xdev -printf '%p\\n' 2>/dev/null || true`,
    {
      timeoutMs: APT_TIMEOUT_MS,
    },
  );
  return new Set(out.trim().split("\n"));
}

/** Runs apt-get in the container; returns its transcript (throws unless it succeeds). */
async function apt(container: Container, args: string): Promise<string> {
  const result = await container.exec(
    ["env", "DEBIAN_FRONTEND=noninteractive", "sh", "-c", `apt-get ${args} 2>&1`],
    { timeoutMs: APT_TIMEOUT_MS },
  );
  const transcript = `# apt-get ${args}\n${result.stdout}${result.stderr}`;
  console.log(transcript);
  assert.equal(result.code, 0, transcript);
  return transcript;
}

/** `systemctl show -p NAME --value UNIT` in the container. */
async function unitProperty(container: Container, unit: string, name: string): Promise<string> {
  return (await container.sh(`systemctl show -p ${name} --value ${unit}`)).trim();
}

/** The service that logs: the recommended unit, or the service a recommended socket starts. */
const SERVICE = RECOMMENDED_UNIT.replace(/\.socket$/, ".service");

Deno.test({
  name: "container: apt install serves port 22 and fail2ban bans; upgrade keeps an edited jail, " +
    "restarts, leaves a disabled unit off; remove stops; purge leaves nothing",
  ignore: needsTools("systemd-nspawn", "dpkg-deb", "fail2ban-server", "iptables"),
  async fn() {
    const container = await bootContainer();
    try {
      // The program (Deno, a copy of the checkout, the npm cache) as tests/_container.ts installs
      // it; its stand-in binary becomes the package's /usr/bin/net-bouncer and leaves
      // /usr/local/bin, so the units can only work through the package's paths.
      await installProgram(container);
      const standIn = Deno.readTextFileSync(container.path(PROGRAM_PATH));
      await container.sh(`rm ${PROGRAM_PATH}`);
      await withTempDir(async (dir) => {
        const binary = `${dir}/net-bouncer`;
        await Deno.writeTextFile(binary, standIn);
        await Deno.chmod(binary, 0o755);
        for (const version of [VERSION, UPGRADE_VERSION]) {
          const deb = await buildPackage(binary, dir, { version, fast: true });
          await Deno.copyFile(deb, container.path(`/tmp/${debFileName(version, hostArch())}`));
        }
      });
      // The machine's image has fail2ban but no sshd: Debian's default sshd jail (no log file)
      // would keep fail2ban from starting. No policy-rc.d may forbid starting services.
      await container.sh(`
        set -e
        printf '[sshd]\\nenabled = false\\n' > /etc/fail2ban/jail.d/defaults-debian.local
        rm -f /usr/sbin/policy-rc.d
        systemctl start fail2ban.service
      `);
      await waitFor(
        "fail2ban to answer",
        async () => (await container.exec(["fail2ban-client", "ping"])).code === 0,
      );
      const before = await snapshot(container);

      // Install.
      await apt(container, `install -y /tmp/${debFileName(VERSION, hostArch())}`);
      assert.equal(
        (await container.sh(`systemctl is-enabled ${RECOMMENDED_UNIT}`)).trim(),
        "enabled",
      );
      assert.equal(
        (await container.sh(`systemctl is-active ${RECOMMENDED_UNIT}`)).trim(),
        "active",
      );
      assert.match(await container.sh("fail2ban-client status"), /net-bouncer/);
      // `man net-bouncer` shows the page.
      assert.match(
        await container.sh("MANWIDTH=80 man -P cat net-bouncer"),
        /^NAME\n\s+net-bouncer\s+-\s+honeypot/m,
      );
      assert.equal(await knockInContainer(container, "127.0.0.5"), "connected");
      const log = container.path(LOG_FILE);
      await waitFor(
        "the connection line in the log",
        () => /\[INFO\] Connection from 127\.0\.0\.5 on port 22$/m.test(readOrEmpty(log)),
      );
      assert.equal((await container.sh(`systemctl is-active ${SERVICE}`)).trim(), "active");
      assert.equal(
        (await container.sh(
          `readlink -f /proc/$(systemctl show -p MainPID --value ${SERVICE})/exe`,
        ))
          .trim(),
        (await container.sh("readlink -f /opt/net-bouncer/deno")).trim(),
      );
      assert.match(
        await container.sh(
          `tr '\\0' ' ' < /proc/$(systemctl show -p MainPID --value ${SERVICE})/cmdline`,
        ),
        /\/opt\/net-bouncer\/app\/main\.ts/,
      );
      await waitFor(
        "127.0.0.5 banned by fail2ban",
        async () =>
          /Banned IP list:\s+127\.0\.0\.5\b/.test(
            await container.sh("fail2ban-client status net-bouncer"),
          ),
      );
      // The ban is a firewall rule (fail2ban lists the ban before its action has run): the
      // address cannot connect any more.
      await waitFor(
        "the firewall rule of the ban",
        async () => /-s 127\.0\.0\.5\/32 -j REJECT/.test(await container.sh("iptables -S")),
      );
      assert.equal(await knockInContainer(container, "127.0.0.5"), "ECONNREFUSED");
      console.log(await container.sh("fail2ban-client status net-bouncer"));

      // Upgrade: the admin's jail survives, the service restarts on the new package.
      const jail = "/etc/fail2ban/jail.d/net-bouncer.conf";
      await container.sh(`sed -i 's/^bantime   = 1d$/bantime   = 2d/' ${jail}`);
      const edited = Deno.readTextFileSync(container.path(jail));
      assert.match(edited, /^bantime {3}= 2d$/m);
      const invocation = await unitProperty(container, SERVICE, "InvocationID");
      const socketInvocation = await unitProperty(container, RECOMMENDED_UNIT, "InvocationID");
      await apt(container, `install -y /tmp/${debFileName(UPGRADE_VERSION, hostArch())}`);
      assert.equal(
        (await container.sh("dpkg-query -W -f '${Version}' net-bouncer")).trim(),
        UPGRADE_VERSION,
      );
      assert.equal(Deno.readTextFileSync(container.path(jail)), edited);
      assert.equal((await container.sh(`ls ${jail}.dpkg-* 2>/dev/null || true`)).trim(), "");
      assert.equal(await knockInContainer(container, "127.0.0.6"), "connected");
      await waitFor(
        "the new process's line",
        () => /\[INFO\] Connection from 127\.0\.0\.6 on port 22$/m.test(readOrEmpty(log)),
      );
      const after = await unitProperty(container, SERVICE, "InvocationID");
      assert.notEqual(after, invocation, `${SERVICE} was not restarted`);
      if (RECOMMENDED_UNIT !== SERVICE) {
        // The socket kept listening through the upgrade (its backlog held connections).
        assert.equal(
          await unitProperty(container, RECOMMENDED_UNIT, "InvocationID"),
          socketInvocation,
        );
      }
      assert.equal((await container.sh(`systemctl is-active ${SERVICE}`)).trim(), "active");
      assert.match(await container.sh("fail2ban-client get net-bouncer bantime"), /^172800$/m);

      // A unit the admin disabled stays disabled and stopped across an upgrade (reinstalling
      // runs the same maintainer scripts, with the old version given).
      await container.sh(`systemctl disable --now ${RECOMMENDED_UNIT} ${SERVICE}`);
      await apt(
        container,
        `install -y --reinstall /tmp/${debFileName(UPGRADE_VERSION, hostArch())}`,
      );
      assert.equal(
        (await container.exec(["systemctl", "is-enabled", RECOMMENDED_UNIT])).stdout.trim(),
        "disabled",
      );
      const stopped = await container.exec(["systemctl", "is-active", RECOMMENDED_UNIT, SERVICE]);
      assert.deepEqual(stopped.stdout.trim().split("\n"), ["inactive", "inactive"]);
      await container.sh(`systemctl enable --now ${RECOMMENDED_UNIT}`);
      assert.equal(await knockInContainer(container, "127.0.0.9"), "connected");
      await waitFor(
        "a line after enabling the unit again",
        () => /\[INFO\] Connection from 127\.0\.0\.9 on port 22$/m.test(readOrEmpty(log)),
      );
      assert.equal((await container.sh(`systemctl is-active ${SERVICE}`)).trim(), "active");

      // Remove: the units stop; the configuration and the logs stay.
      await apt(container, "remove -y net-bouncer");
      const state = await container.exec(["systemctl", "is-active", RECOMMENDED_UNIT, SERVICE]);
      assert.deepEqual(state.stdout.trim().split("\n"), ["inactive", "inactive"]);
      assert.equal(Deno.readTextFileSync(container.path(jail)), edited);
      assert.match(readOrEmpty(log), /Connection from 127\.0\.0\.9 on port 22$/m);
      assert.equal(await knockInContainer(container, "127.0.0.8"), "ECONNREFUSED");

      // Purge.
      await apt(container, "purge -y net-bouncer");
      assert.doesNotMatch(await container.sh("fail2ban-client status"), /net-bouncer/);
      assert.doesNotMatch(await container.sh("iptables -S"), /f2b-net-bouncer/);
      const left = [...await snapshot(container)].filter((path) => !before.has(path));
      console.log(`new paths after the purge:\n${left.join("\n") || "(none)"}`);
      // A trace of the package: a new path that is no churn, or one that names the package
      // (but man-db's cache of the page that the test's `man` formatted, which man-db's daily
      // job drops once the source is gone, and the harness's images).
      const traces = left.filter((path) =>
        !CHURN.some((pattern) => pattern.test(path)) ||
        (path.includes("net-bouncer") && !path.startsWith("/var/cache/man/") &&
          !path.startsWith(`${MOUNT_BASE}/`))
      );
      assert.deepEqual(traces, []);
    } catch (error) {
      // What the units and fail2ban said, for the failure's message.
      const state = await container.exec([
        "sh",
        "-c",
        `
        systemctl status --no-pager ${RECOMMENDED_UNIT} ${SERVICE} fail2ban.service
        journalctl --no-pager -n 60 -u ${RECOMMENDED_UNIT} -u ${SERVICE} -u fail2ban.service
        ls -la /var/log/net-bouncer/ /var/log/private/ 2>&1
      `,
      ]);
      throw new Error(`${(error as Error).message}\n${state.stdout}${state.stderr}`, {
        cause: error,
      });
    } finally {
      await container.stop();
    }
  },
});
