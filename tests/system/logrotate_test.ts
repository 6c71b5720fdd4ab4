/**
 * contrib/logrotate/net-bouncer run by the real logrotate against the real program: three forced
 * rotations while a client keeps connecting lose no connection line and write none twice.
 */
import assert from "node:assert/strict";
import {
  knockFrom,
  LOOPBACK_CLIENTS,
  needsTools,
  ROOT,
  run,
  startProgram,
  waitFor,
  withTempDir,
} from "../_util.ts";

/** The config under test. */
const CONTRIB = `${ROOT}contrib/logrotate/net-bouncer`;
/** Forced rotations while the client connects. */
const ROTATIONS = 3;
/** Upper bound on the client's connections (the loop stops earlier, when rotating is done). */
const MAX_CONNECTIONS = 60_000;
/** Added to a second between rotations: far more than time(2)'s lag of one timer tick. */
const ROTATION_MARGIN_MS = 100;
/** Client addresses, used in turn (both reach the one dual-stack listener). */
const CLIENTS = LOOPBACK_CLIENTS;
/** Exact `postrotate` command of the contrib file, replaced by a kill for the test. */
const POSTROTATE_COMMAND =
  "systemctl try-reload-or-restart net-bouncer.service net-bouncer-activated.service >/dev/null 2>&1 || true";

/** A connection event of `--format json`. */
interface ConnectionEvent {
  event: string;
  src_ip: string;
  src_port: number;
}

/**
 * The contrib config with only the host-specific parts changed: the log directory, the
 * postrotate command (signal this test's process instead of the systemd unit), and a dateformat
 * with seconds, because dateext's default (-%Y%m%d) would give all rotations of one day the same
 * name and logrotate would refuse the second one.
 */
function derivedConfig(dir: string, pid: number): string {
  const text = Deno.readTextFileSync(CONTRIB);
  const replacements: [string, string][] = [
    ["/var/log/net-bouncer/*.log {", `${dir}/*.log {`],
    [POSTROTATE_COMMAND, `kill -HUP ${pid}`],
    ["    dateext\n", "    dateext\n    dateformat -%Y%m%d-%H%M%S\n"],
  ];
  let result = text;
  for (const [from, to] of replacements) {
    assert.ok(result.includes(from), `${CONTRIB} no longer contains ${JSON.stringify(from)}`);
    result = result.replace(from, to);
  }
  return result;
}

/** The text of a log file, decompressed when it ends in .gz. */
async function readLog(path: string): Promise<string> {
  if (!path.endsWith(".gz")) return Deno.readTextFileSync(path);
  const file = await Deno.open(path);
  return await new Response(file.readable.pipeThrough(new DecompressionStream("gzip"))).text();
}

/** Connection events in a JSON log text. */
function connections(text: string): ConnectionEvent[] {
  return text.split("\n").filter((line) => line !== "").map((line) => JSON.parse(line))
    .filter((event: ConnectionEvent) => event.event === "connection");
}

Deno.test({
  name: "logrotate: three rotations while a client connects lose and duplicate no line",
  ignore: needsTools("logrotate"),
  async fn() {
    // withTempDir makes it with mode 0700: logrotate skips group/world-writable directories.
    await withTempDir(async (dir) => {
      const logFile = `${dir}/net-bouncer.log`;
      // JSON lines carry the client port, so lines are matched to connections: a lost line and a
      // line written twice are both detected. Rotation does not depend on the format.
      const program = await startProgram(["-p", "0", "--format", "json"], { logFile });
      const made: string[] = [];
      let rotating = true;
      const client = (async () => {
        while (rotating && made.length < MAX_CONNECTIONS) {
          const knock = await knockFrom(CLIENTS[made.length % CLIENTS.length], program.port);
          made.push(`${knock.address} ${knock.port}`);
        }
      })();
      try {
        const config = `${dir}/logrotate.conf`;
        // logrotate ignores a config that group or others may write.
        Deno.writeTextFileSync(config, derivedConfig(dir, program.child.pid));
        Deno.chmodSync(config, 0o600);
        const state = `${dir}/logrotate.state`;
        let nextRotation = 0;
        for (let i = 0; i < ROTATIONS; i++) {
          // notifempty: rotate only a file that has a connection line (also shows the program
          // writes to the file logrotate created, i.e. SIGHUP reopened it).
          await waitFor(`a connection line in ${logFile} before rotation ${i + 1}`, () => {
            return connections(Deno.readTextFileSync(logFile)).length > 0;
          });
          // dateformat names a rotation by the second of logrotate's clock (time(2), which may
          // read a coarse clock a timer tick off Date.now()): more than a second since the previous
          // run started gives each run its own second, whichever way the two clocks differ.
          await waitFor("a new second for dateformat", () => Date.now() >= nextRotation);
          nextRotation = Date.now() + 1000 + ROTATION_MARGIN_MS;
          const out = await run("logrotate", ["-f", "-s", state, config]);
          assert.equal(out.stderr, "", `logrotate printed:\n${out.stderr}`);
          assert.equal(out.code, 0);
        }
        await waitFor("a connection line after the last rotation", () => {
          return connections(Deno.readTextFileSync(logFile)).length > 0;
        });
        rotating = false;
        await client;
        const result = await program.stop();
        assert.equal(result.code, 0, result.stderr);

        const files = [...Deno.readDirSync(dir)].map((entry) => entry.name)
          .filter((name) => name.startsWith("net-bouncer.log")).sort();
        // The current file, the newest rotated one uncompressed (delaycompress), two gzipped.
        const rotated = files.filter((name) => /^net-bouncer\.log-\d{8}-\d{6}$/.test(name));
        const gzipped = files.filter((name) => /^net-bouncer\.log-\d{8}-\d{6}\.gz$/.test(name));
        assert.deepEqual(
          {
            current: files.includes("net-bouncer.log"),
            rotated: rotated.length,
            gz: gzipped.length,
          },
          { current: true, rotated: 1, gz: ROTATIONS - 1 },
          files.join(" "),
        );
        assert.equal(files.length, 1 + ROTATIONS);
        // create 0640.
        assert.equal(Deno.statSync(logFile).mode! & 0o777, 0o640);

        const logged: string[] = [];
        for (const name of files) {
          const events = connections(await readLog(`${dir}/${name}`));
          assert.ok(events.length > 0, `${name} holds connection lines`);
          logged.push(...events.map((event) => `${event.src_ip} ${event.src_port}`));
        }
        console.log(
          `${made.length} connections, ${ROTATIONS} rotations, files: ${files.join(" ")}`,
        );
        assert.ok(made.length > ROTATIONS, `only ${made.length} connections`);
        assert.equal(logged.length, made.length, "one line per connection");
        // Same multiset of (address, port): the kernel may reuse a client port after thousands of
        // connections, so a pair can occur more than once, in both lists equally often.
        assert.deepEqual([...logged].sort(), [...made].sort());
      } finally {
        rotating = false;
        await client.catch(() => {});
        await program.stop();
      }
    });
  },
});

Deno.test("logrotate: the contrib config rotates the unit's log in create mode with SIGHUP", () => {
  const text = Deno.readTextFileSync(CONTRIB);
  const directives = text.split("\n").map((line) => line.trim())
    .filter((line) => line && !line.startsWith("#"));
  for (
    const directive of [
      "/var/log/net-bouncer/*.log {",
      "daily",
      "dateext",
      "compress",
      "delaycompress",
      "missingok",
      "notifempty",
      "sharedscripts",
      "create 0640",
      "postrotate",
      POSTROTATE_COMMAND,
      "endscript",
    ]
  ) assert.ok(directives.includes(directive), directive);
  assert.ok(directives.some((line) => /^rotate \d+$/.test(line)));
  // systemctl reload runs the unit's ExecReload, which must send SIGHUP.
  const unit = Deno.readTextFileSync(`${ROOT}contrib/systemd/net-bouncer.service`);
  assert.match(unit, /^ExecReload=\/bin\/kill -HUP \$MAINPID$/m);
});
