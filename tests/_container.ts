/**
 * Test harness: boots a real systemd as PID 1 in a container of this machine's own image
 * (systemd-nspawn), so the shipped units run as an admin runs them, and installs the program
 * in it.
 *
 * The image is the machine's `/`, bind-mounted READ-ONLY on a fresh directory of its own
 * (never inside a directory that is deleted recursively: a recursive delete through a writable
 * bind of `/` would destroy the machine). nspawn's `--volatile=overlay` puts a tmpfs over it, so
 * the container may write anywhere and nothing reaches the machine. The bind is unmounted in
 * every exit path: `stop()` (call it in `finally`) and an unload handler; a bind left by a
 * killed test run is unmounted by the next boot.
 */
import {
  DEADLINE_MS,
  productionRunArgs,
  ROOT,
  run,
  type RunResult,
  shellRunner,
  waitFor,
} from "./_util.ts";

/** Where the read-only binds of `/` are mounted: a directory nothing removes recursively. */
export const MOUNT_BASE = "/var/lib/net-bouncer-test-containers";
/** How long booting (to `systemctl is-system-running`) may take. */
export const BOOT_TIMEOUT_MS = 90_000;
/** How long the container gets to power off before it is killed. */
export const STOP_TIMEOUT_MS = 15_000;
/** Where the program is installed inside the container (checkout copy, Deno, DENO_DIR). */
export const PROGRAM_DIR = "/opt/net-bouncer";
/** The path the units' ExecStart names. */
export const PROGRAM_PATH = "/usr/local/bin/net-bouncer";
/** Where the host's checkout, Deno and DENO_DIR are bound read-only inside the container. */
const HOST_DIR = "/run/net-bouncer-host";

/** A booted container. */
export interface Container {
  /** Its PID 1 (systemd), as this machine sees it. */
  readonly pid: number;
  /** Runs a command inside (all of the container's namespaces), with a deadline. */
  exec(args: string[], options?: { timeoutMs?: number; stdin?: string }): Promise<RunResult>;
  /** Runs a shell script inside; throws with its output unless it exits 0. */
  sh(script: string, options?: { timeoutMs?: number }): Promise<string>;
  /** Starts a command in the container's network namespace only (this machine's files). */
  spawnInNetwork(args: string[]): Deno.ChildProcess;
  /** This machine's path of a file inside the container (through /proc/PID/root). */
  path(inside: string): string;
  /** Powers the container off (killing it after STOP_TIMEOUT_MS) and unmounts the image. */
  stop(): Promise<void>;
}

function runSync(cmd: string, args: string[]): { code: number; text: string } {
  const out = new Deno.Command(cmd, { args, stdin: "null", stdout: "piped", stderr: "piped" })
    .outputSync();
  const decoder = new TextDecoder();
  return { code: out.code, text: decoder.decode(out.stdout) + decoder.decode(out.stderr) };
}

/** Whether `dir` is a mount point now. */
function isMountPoint(dir: string): boolean {
  return runSync("mountpoint", ["-q", dir]).code === 0;
}

/**
 * Unmounts the bind on `dir` and removes the (then empty) directory, never recursively: if the
 * unmount fails, the directory stays, and so does everything under it.
 */
function unmountImage(dir: string): void {
  for (let attempt = 0; attempt < 3 && isMountPoint(dir); attempt++) {
    // Lazy on the last try: a process that still holds a file there must not keep it mounted.
    runSync("umount", attempt < 2 ? [dir] : ["--lazy", dir]);
  }
  if (isMountPoint(dir)) throw new Error(`Cannot unmount "${dir}"`);
  try {
    Deno.removeSync(dir); // not recursive: fails on a non-empty directory
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  try {
    Deno.removeSync(`${dir}.owner`);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
}

function processAlive(pid: number): boolean {
  try {
    Deno.statSync(`/proc/${pid}`);
    return true;
  } catch {
    return false;
  }
}

/** Whether process `pid` runs a command line that mentions `text`. */
function commandMentions(pid: number, text: string): boolean {
  try {
    return Deno.readTextFileSync(`/proc/${pid}/cmdline`).includes(text);
  } catch {
    return false;
  }
}

/**
 * Cleans up after test runs that were killed before their cleanup ran: their nspawn (and so
 * their container) is killed, the image unmounted, nspawn's lock file removed. The owner file
 * next to each image holds "TEST_PID NSPAWN_PID".
 */
function removeStaleImages(): void {
  for (const entry of Deno.readDirSync(MOUNT_BASE)) {
    if (!entry.isDirectory || !entry.name.startsWith("root.")) continue;
    const dir = `${MOUNT_BASE}/${entry.name}`;
    let owner = 0;
    let nspawn = 0;
    try {
      [owner, nspawn = 0] = Deno.readTextFileSync(`${dir}.owner`).trim().split(" ").map(Number);
    } catch {
      // No owner file: its run is gone (the owner file is written before the directory).
    }
    if (owner > 0 && processAlive(owner)) continue;
    // Its nspawn, if it outlived the run: named in the owner file, or found by its -D argument.
    const candidates = nspawn > 0 ? [nspawn] : nspawnProcesses();
    for (const pid of candidates.filter((pid) => commandMentions(pid, `${dir}\0`))) {
      const pid1 = childNamed(pid, "systemd");
      runSync("kill", ["-KILL", "--", `-${pid}`]);
      if (pid1) runSync("kill", ["-KILL", String(pid1)]);
    }
    unmountImage(dir);
  }
  for (const entry of Deno.readDirSync(MOUNT_BASE)) {
    // systemd-nspawn's lock files (".#root.X.lck") of images that are gone, and owner files of
    // runs that are gone and whose image is (a run killed between the two removals).
    const lock = entry.name.match(/^\.#(root\.[^/]+)\.lck$/);
    if (lock && !exists(`${MOUNT_BASE}/${lock[1]}`)) {
      Deno.removeSync(`${MOUNT_BASE}/${entry.name}`);
    }
    const owner = entry.name.match(/^(root\.[^/]+)\.owner$/);
    if (owner && !exists(`${MOUNT_BASE}/${owner[1]}`)) {
      const pid = Number(Deno.readTextFileSync(`${MOUNT_BASE}/${entry.name}`).split(" ")[0]);
      if (!(pid > 0 && processAlive(pid))) Deno.removeSync(`${MOUNT_BASE}/${entry.name}`);
    }
  }
}

/** The ids of the systemd-nspawn processes running now. */
function nspawnProcesses(): number[] {
  const pids: number[] = [];
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      if (Deno.readTextFileSync(`/proc/${entry.name}/comm`).trim() === "systemd-nspawn") {
        pids.push(Number(entry.name));
      }
    } catch {
      // Gone meanwhile.
    }
  }
  return pids;
}

function exists(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

/** The read-only bind of `/` on a fresh directory under MOUNT_BASE. */
function mountImage(): string {
  Deno.mkdirSync(MOUNT_BASE, { recursive: true, mode: 0o700 });
  removeStaleImages();
  // The owner file first: another test run cleaning up must never take the directory for a
  // stale one while it is being mounted.
  const dir = `${MOUNT_BASE}/root.${crypto.randomUUID().slice(0, 8)}`;
  Deno.writeTextFileSync(`${dir}.owner`, String(Deno.pid), { createNew: true });
  Deno.mkdirSync(dir, { mode: 0o755 });
  const mounted = runSync("mount", ["--bind", "-o", "ro", "/", dir]);
  if (mounted.code !== 0) {
    unmountImage(dir);
    throw new Error(`Cannot bind / on "${dir}": ${mounted.text.trim()}`);
  }
  const options = runSync("findmnt", ["-n", "-o", "OPTIONS", "--mountpoint", dir]).text;
  if (!/^ro\b/.test(options.trim())) {
    unmountImage(dir);
    throw new Error(`The bind of / on "${dir}" is not read-only: ${options.trim()}`);
  }
  return dir;
}

/** The first child process of `pid` whose command is `comm`, or 0. */
function childNamed(pid: number, comm: string): number {
  let children = "";
  try {
    children = Deno.readTextFileSync(`/proc/${pid}/task/${pid}/children`);
  } catch {
    return 0;
  }
  for (const child of children.trim().split(/\s+/).filter(Boolean).map(Number)) {
    try {
      if (Deno.readTextFileSync(`/proc/${child}/comm`).trim() === comm) return child;
    } catch {
      // Gone meanwhile.
    }
  }
  return 0;
}

/** The host paths the container gets read-only: checkout, Deno, DENO_DIR. */
async function hostPaths(): Promise<{ checkout: string; deno: string; denoDir: string }> {
  const info = await run(Deno.execPath(), ["info", "--json"]);
  const denoDir = String(JSON.parse(info.stdout).denoDir);
  return { checkout: ROOT.replace(/\/$/, ""), deno: Deno.execPath(), denoDir };
}

/**
 * Boots the container: systemd as PID 1, no network (only its own loopback), and this checkout,
 * Deno and DENO_DIR bound read-only under HOST_DIR. Resolves once `systemctl
 * is-system-running --wait` answers. `bootTarget` is the unit systemd boots into.
 */
export async function bootContainer(
  { bootTarget = "basic.target" }: { bootTarget?: string } = {},
): Promise<Container> {
  const host = await hostPaths();
  const dir = mountImage();
  let nspawn: Deno.ChildProcess | null = null;
  let nspawnPid = 0;
  let pid = 0;
  let stopped = false;
  let bootOutput = Promise.resolve("");

  // Synchronous: also runs from the unload handler, where nothing can be awaited.
  const killAndUnmount = () => {
    if (stopped) return;
    stopped = true;
    globalThis.removeEventListener("unload", killAndUnmount);
    for (const signal of signals) Deno.removeSignalListener(signal, onSignal);
    // nspawn runs in a process group of its own (setsid); PID 1 ends its PID namespace.
    if (nspawnPid) runSync("kill", ["-KILL", "--", `-${nspawnPid}`]);
    if (pid && processAlive(pid)) runSync("kill", ["-KILL", String(pid)]);
    unmountImage(dir);
  };
  globalThis.addEventListener("unload", killAndUnmount);
  // A test run stopped by SIGTERM or SIGINT runs no unload handler: clean up, then exit.
  const onSignal = () => {
    killAndUnmount();
    Deno.exit(130);
  };
  const signals: Deno.Signal[] = ["SIGTERM", "SIGINT", "SIGHUP"];
  for (const signal of signals) Deno.addSignalListener(signal, onSignal);

  try {
    // setsid: nspawn leads a new process group, so stopping it cannot hit the test runner.
    nspawn = new Deno.Command("setsid", {
      args: [
        "systemd-nspawn",
        "-D",
        dir,
        "--volatile=overlay",
        "--private-network",
        "--register=no",
        "--keep-unit",
        "--link-journal=no",
        "--console=read-only",
        `--bind-ro=${host.checkout}:${HOST_DIR}/checkout`,
        `--bind-ro=${host.deno}:${HOST_DIR}/deno`,
        `--bind-ro=${host.denoDir}:${HOST_DIR}/deno-dir`,
        "-b",
        "--",
        `systemd.unit=${bootTarget}`,
        // A daily timer could rotate the logs the tests count; they rotate them themselves.
        "systemd.mask=logrotate.timer",
      ],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    // setsid execs nspawn in place (the child is not a group leader), so this is nspawn's pid.
    nspawnPid = nspawn.pid;
    Deno.writeTextFileSync(`${dir}.owner`, `${Deno.pid} ${nspawnPid}`);
    const child = nspawn;
    // Boot messages, for the error when booting fails.
    bootOutput = Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text()])
      .then(([out, err]) => out + err);
    let exited = false;
    child.status.then(() => exited = true);
    pid = await waitFor("the container's PID 1 (systemd)", () => {
      if (exited) throw new Error("systemd-nspawn exited while booting");
      return childNamed(nspawnPid, "systemd");
    }, { timeoutMs: BOOT_TIMEOUT_MS });
    const container = makeContainer(pid, async () => {
      if (stopped) return;
      // SIGTERM: nspawn asks PID 1 to power off.
      runSync("kill", ["-TERM", "--", `-${nspawnPid}`]);
      const timer = setTimeout(
        () => runSync("kill", ["-KILL", "--", `-${nspawnPid}`]),
        STOP_TIMEOUT_MS,
      );
      try {
        await child.status;
      } finally {
        clearTimeout(timer);
      }
      await bootOutput;
      killAndUnmount();
    });
    // Wait for the boot: "running", or "degraded" when a unit of the machine's image failed
    // (its failure does not concern these tests; it is printed).
    // Until PID 1 has set up /run/systemd and its private bus, systemctl says "offline" or
    // nothing ("Failed to connect to bus").
    const state = await waitFor("systemctl is-system-running", async () => {
      const result = await container.exec(["systemctl", "is-system-running", "--wait"], {
        timeoutMs: BOOT_TIMEOUT_MS,
      });
      return ["", "offline"].includes(result.stdout.trim()) ? null : result;
    }, { timeoutMs: BOOT_TIMEOUT_MS });
    if (!["running", "degraded"].includes(state.stdout.trim())) {
      throw new Error(`The container did not boot: ${state.stdout.trim()} ${state.stderr}`);
    }
    if (state.stdout.trim() === "degraded") {
      const failed = await container.exec(["systemctl", "--failed", "--no-legend"]);
      console.warn(`container: degraded boot, failed units:\n${failed.stdout}`);
    }
    return container;
  } catch (error) {
    killAndUnmount();
    if (nspawn) await nspawn.status;
    const output = await bootOutput;
    throw new Error(`${(error as Error).message}\n${output.slice(-4000)}`, { cause: error });
  }
}

function makeContainer(pid: number, stop: () => Promise<void>): Container {
  const exec: Container["exec"] = (args, { timeoutMs = DEADLINE_MS * 3, stdin } = {}) =>
    // nsenter -a: every namespace of PID 1, its root and working directory.
    run("nsenter", ["-t", String(pid), "-a", ...args], { stdin, timeoutMs });
  return {
    pid,
    exec,
    sh: shellRunner(exec),
    spawnInNetwork: (args) =>
      new Deno.Command("nsenter", {
        args: ["-t", String(pid), "-n", ...args],
        stdin: "piped",
        stdout: "piped",
        stderr: "piped",
      }).spawn(),
    path: (inside) => `/proc/${pid}/root${inside}`,
    stop,
  };
}

/**
 * Installs the program in the container as the units expect it: a copy of the checkout (no
 * .git), of Deno and of the npm cache under PROGRAM_DIR, readable by any user (the units run
 * as a DynamicUser), the module graph cached there, and at PROGRAM_PATH a stand-in for the
 * compiled binary (`deno compile` cannot run here; the release workflow ships the real one):
 * a shell script that execs `deno run` with the production flags of deno.json's `start` task.
 */
export async function installProgram(container: Container): Promise<void> {
  // productionRunArgs() starts with the subcommand ("run"); the flags follow it.
  const flags = productionRunArgs().filter((word) => word !== "run").map((flag) =>
    `'${flag.replaceAll("'", "'\\''")}'`
  ).join(" ");
  await container.sh(
    `
    set -eu
    install -d -m 0755 ${PROGRAM_DIR} ${PROGRAM_DIR}/app ${PROGRAM_DIR}/deno-dir
    tar -C ${HOST_DIR}/checkout --exclude=./.git -cf - . | tar -C ${PROGRAM_DIR}/app -xf -
    install -m 0755 ${HOST_DIR}/deno ${PROGRAM_DIR}/deno
    for sub in npm remote; do
      if [ -d ${HOST_DIR}/deno-dir/$sub ]; then cp -R ${HOST_DIR}/deno-dir/$sub ${PROGRAM_DIR}/deno-dir/; fi
    done
    cd ${PROGRAM_DIR}/app
    DENO_DIR=${PROGRAM_DIR}/deno-dir DENO_NO_UPDATE_CHECK=1 ${PROGRAM_DIR}/deno cache --quiet --frozen main.ts
    chmod -R a+rX,go-w ${PROGRAM_DIR}
    cat > ${PROGRAM_PATH} <<'EOF'
#!/bin/sh
# Stand-in for the compiled net-bouncer (tests/_container.ts): deno run with the start task's flags.
export DENO_DIR=${PROGRAM_DIR}/deno-dir DENO_NO_UPDATE_CHECK=1
exec ${PROGRAM_DIR}/deno run ${flags} ${PROGRAM_DIR}/app/main.ts "$@"
EOF
    chmod 0755 ${PROGRAM_PATH}
  `,
    { timeoutMs: 120_000 },
  );
}

/** Copies files of the checkout into the container (relative source, absolute target). */
export async function installFiles(
  container: Container,
  files: [source: string, target: string][],
): Promise<void> {
  const lines = files.map(([source, target]) =>
    `install -D -m 0644 '${HOST_DIR}/checkout/${source}' '${target}'`
  );
  await container.sh(`set -eu\n${lines.join("\n")}`);
}
