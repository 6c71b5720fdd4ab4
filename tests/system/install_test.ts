/**
 * scripts/install.sh against a temporary root (--prefix): every file from contrib/ and the binary
 * land in their places with the right modes, --dry-run writes nothing, an existing jail config is
 * kept without --force, and bad options exit 2 with "install.sh: error: ...".
 */
import assert from "node:assert/strict";
import { ROOT, run, type RunResult, withTempDir } from "../_util.ts";

const SCRIPT = `${ROOT}scripts/install.sh`;
const BINARY_MODE = 0o755;
const CONFIG_MODE = 0o644;
/** Exit code of install.sh for a usage error. */
const USAGE_EXIT = 2;

/** Destination (relative to the root) of each file install.sh must install, with its mode. */
function expectedFiles(binary: string): Map<string, { source: string; mode: number }> {
  const files = new Map<string, { source: string; mode: number }>();
  files.set("usr/local/bin/net-bouncer", { source: binary, mode: BINARY_MODE });
  // Whatever units contrib/systemd holds at run time (services, and the socket of the pair).
  for (const entry of Deno.readDirSync(`${ROOT}contrib/systemd`)) {
    if (entry.isFile && /\.(service|socket)$/.test(entry.name)) {
      files.set(`etc/systemd/system/${entry.name}`, {
        source: `${ROOT}contrib/systemd/${entry.name}`,
        mode: CONFIG_MODE,
      });
    }
  }
  for (
    const [dest, source] of [
      ["etc/fail2ban/filter.d/net-bouncer.conf", "contrib/fail2ban/filter.d/net-bouncer.conf"],
      ["etc/fail2ban/jail.d/net-bouncer.conf", "contrib/fail2ban/jail.d/net-bouncer.conf"],
      ["etc/logrotate.d/net-bouncer", "contrib/logrotate/net-bouncer"],
    ]
  ) {
    files.set(dest, { source: `${ROOT}${source}`, mode: CONFIG_MODE });
  }
  return files;
}

/** Every file under `dir`, as paths relative to it. */
function listFiles(dir: string, prefix = ""): string[] {
  const out: string[] = [];
  for (const entry of Deno.readDirSync(`${dir}/${prefix}`)) {
    const path = `${prefix}${entry.name}`;
    if (entry.isDirectory) out.push(...listFiles(dir, `${path}/`));
    else out.push(path);
  }
  return out.sort();
}

/** Runs install.sh with `args`; returns exit code and output. */
function install(args: string[]): Promise<RunResult> {
  return run("bash", [SCRIPT, ...args]);
}

/** Runs `body` with a temp dir holding a fake binary and an empty root; removes it afterwards. */
async function withTempRoot(body: (root: string, binary: string) => Promise<void>): Promise<void> {
  await withTempDir(async (dir) => {
    const binary = `${dir}/net-bouncer-x86_64-unknown-linux-gnu`;
    // Mode 0600: install.sh must set 0755 itself, not keep the download's mode.
    await Deno.writeTextFile(binary, "#!/bin/sh\necho 0.1.0\n", { mode: 0o600 });
    await Deno.chmod(binary, 0o600);
    await Deno.mkdir(`${dir}/root`);
    await body(`${dir}/root`, binary);
  });
}

Deno.test("every contrib file of the README's install table exists", () => {
  const readme = Deno.readTextFileSync(`${ROOT}README.md`);
  // Rows like "| `contrib/fail2ban/jail.d/net-bouncer.conf` | `/etc/fail2ban/jail.d/...` |".
  const sources = [...readme.matchAll(/^\| `(contrib\/[^`]+)` +\| `\/[^`]+` +\|$/gm)]
    .map((match) => match[1]);
  assert.ok(sources.length >= 4, `install table rows found: ${sources.join(", ")}`);
  for (const source of sources) {
    const slash = source.lastIndexOf("/");
    const [dir, name] = [source.slice(0, slash), source.slice(slash + 1)];
    // A glob row ("contrib/systemd/*.service") stands for at least one file.
    const pattern = new RegExp(`^${name.replaceAll(".", "\\.").replaceAll("*", ".*")}$`);
    const files = [...Deno.readDirSync(`${ROOT}${dir}`)]
      .filter((entry) => entry.isFile && pattern.test(entry.name));
    assert.ok(files.length > 0, `${source} names no file`);
  }
});

Deno.test("install.sh --prefix puts every file in its place with its mode", async () => {
  await withTempRoot(async (root, binary) => {
    const result = await install(["--binary", binary, "--prefix", root]);
    assert.equal(result.code, 0, result.stderr);
    const expected = expectedFiles(binary);
    assert.deepEqual(listFiles(root), [...expected.keys()].sort());
    for (const [dest, { source, mode }] of expected) {
      const info = Deno.statSync(`${root}/${dest}`);
      assert.equal((info.mode ?? 0) & 0o7777, mode, `${dest} mode ${info.mode?.toString(8)}`);
      assert.deepEqual(Deno.readFileSync(`${root}/${dest}`), Deno.readFileSync(source), dest);
    }
    // No systemctl with --prefix (it would act on this machine, not on the staged root).
    assert.doesNotMatch(result.stdout, /systemctl (daemon-reload|try-restart)/);
    console.log(`installed ${expected.size} files: ${[...expected.keys()].join(", ")}`);
  });
});

Deno.test("install.sh --dry-run prints the installs and writes nothing", async () => {
  await withTempRoot(async (root, binary) => {
    const result = await install(["--dry-run", "--binary", binary, "--prefix", root]);
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(listFiles(root), []);
    for (const dest of expectedFiles(binary).keys()) {
      assert.ok(result.stdout.includes(`${root}/${dest}`), `dry run does not mention ${dest}`);
    }
    assert.match(result.stdout, /^install -D -m 0755 .* \S+\/usr\/local\/bin\/net-bouncer$/m);
  });
});

Deno.test("install.sh keeps an existing jail and logrotate config unless --force", async () => {
  await withTempRoot(async (root, binary) => {
    const jail = `${root}/etc/fail2ban/jail.d/net-bouncer.conf`;
    const logrotate = `${root}/etc/logrotate.d/net-bouncer`;
    const unit = `${root}/etc/systemd/system/net-bouncer.service`;
    assert.equal((await install(["--binary", binary, "--prefix", root])).code, 0);
    const edited = "# edited by the admin\n[net-bouncer]\nbantime = 1w\n";
    for (const path of [jail, logrotate, unit]) await Deno.writeTextFile(path, edited);

    const again = await install(["--binary", binary, "--prefix", root]);
    assert.equal(again.code, 0, again.stderr);
    assert.equal(Deno.readTextFileSync(jail), edited);
    assert.equal(Deno.readTextFileSync(logrotate), edited);
    assert.match(again.stdout, /kept existing .*jail\.d\/net-bouncer\.conf/);
    // Program files are replaced (that is the upgrade path).
    assert.notEqual(Deno.readTextFileSync(unit), edited);

    const forced = await install(["--force", "--binary", binary, "--prefix", root]);
    assert.equal(forced.code, 0, forced.stderr);
    assert.equal(
      Deno.readTextFileSync(jail),
      Deno.readTextFileSync(`${ROOT}contrib/fail2ban/jail.d/net-bouncer.conf`),
    );
  });
});

Deno.test("install.sh bad options exit 2 with 'install.sh: error: ...' and write nothing", async () => {
  await withTempRoot(async (root, binary) => {
    const cases: [string[], RegExp][] = [
      [["--bogus", "--binary", binary, "--prefix", root], /unknown option: --bogus/],
      [["--prefix", root], /--binary PATH is required/],
      [["--binary"], /--binary needs a value/],
      [["--binary", binary, "--prefix"], /--prefix needs a value/],
      [["--binary", `${root}/missing`, "--prefix", root], /binary not found/],
      [["--binary", binary, "--prefix", `${root}/missing`], /prefix is not a directory/],
    ];
    for (const [args, message] of cases) {
      const result = await install(args);
      assert.equal(result.code, USAGE_EXIT, `${args.join(" ")}: ${result.stderr}`);
      assert.match(result.stderr, /^install\.sh: error: /, args.join(" "));
      assert.match(result.stderr, message, args.join(" "));
    }
    assert.deepEqual(listFiles(root), []);
  });
});

Deno.test("install.sh --help exits 0 and lists the options", async () => {
  const result = await install(["--help"]);
  assert.equal(result.code, 0);
  for (const option of ["--binary", "--prefix", "--dry-run", "--force"]) {
    assert.ok(result.stdout.includes(option), option);
  }
});
