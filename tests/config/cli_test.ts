import assert from "node:assert/strict";
import { parseArgs, USAGE } from "../../lib/config/cli.ts";
import { UsageError } from "../../lib/errors.ts";
import { ROOT } from "../_util.ts";

const VERSION = "9.8.7";

function config(args: string[]) {
  const invocation = parseArgs(args, { version: VERSION });
  assert.equal(invocation.action, "run");
  return invocation.action === "run" ? invocation.config : assert.fail();
}

Deno.test("parseArgs() reads every option", () => {
  assert.deepEqual(config(["-p", "22", "-p", "23,2323", "--port", "8000-8001"]), {
    ports: [22, 23, 2323, 8000, 8001],
    logFile: null,
    family: "dual",
    bind: [],
    format: "text",
    ignore: [],
    ignoreFile: null,
    listener: "auto",
    metrics: null,
  });
  assert.deepEqual(
    config([
      "--port=22",
      "-l",
      "/var/log/x.log",
      "-6",
      "-b",
      "::1",
      "-b",
      "[0:0::1]",
      "--format",
      "json",
      "--ignore",
      "10.0.0.0/8",
      "--ignore=192.0.2.0/24",
      "--ignore-file",
      "f",
      "--listener",
      "portable",
      "--metrics",
      "[0:0::1]:9100",
    ]),
    {
      ports: [22],
      logFile: "/var/log/x.log",
      family: "ipv6",
      bind: ["::1", "[0:0::1]"],
      format: "json",
      ignore: ["10.0.0.0/8", "192.0.2.0/24"],
      ignoreFile: "f",
      listener: "portable",
      metrics: { hostname: "::1", port: 9100 },
    },
  );
  assert.equal(config(["-4", "-p", "1"]).family, "ipv4");
  assert.equal(config(["-4", "-4", "-p", "1"]).family, "ipv4");
});

Deno.test("parseArgs() needs no -p when the sockets come from systemd", () => {
  const invocation = parseArgs(["-l", "x"], { version: VERSION, portsRequired: false });
  assert.ok(invocation.action === "run");
  assert.deepEqual(invocation.config.ports, []);
  assert.equal(invocation.config.logFile, "x");
});

Deno.test("parseArgs() takes values glued on, after '=', and starting with '-'", () => {
  assert.deepEqual(config(["-p22", "-p0", "-l-"]).ports, [0, 22]);
  assert.equal(config(["-p22", "-l-"]).logFile, "-");
  assert.equal(config(["-p", "22", "-l", "-"]).logFile, "-");
  assert.equal(config(["-p", "22", "--log-file=a=b"]).logFile, "a=b");
  assert.equal(config(["-p", "22", "--log-file", "--weird"]).logFile, "--weird");
  assert.deepEqual(config(["-b::1", "-p", "1"]).bind, ["::1"]);
  assert.equal(config(["-p", "1", "--listener=native"]).listener, "native");
  assert.deepEqual(config(["-p", "1", "--metrics=127.0.0.1:65535"]).metrics, {
    hostname: "127.0.0.1",
    port: 65535,
  });
  // Port 0: the system picks one, as with -p 0.
  assert.deepEqual(config(["-p", "1", "--metrics", "[::1]:0"]).metrics, {
    hostname: "::1",
    port: 0,
  });
  // "--" ends the options.
  assert.deepEqual(config(["-p", "1", "--"]).ports, [1]);
});

Deno.test("parseArgs() prints help and version", () => {
  for (const flag of ["--help", "-h"]) {
    const help = parseArgs(["-p", "22", flag, "--bogus"], { version: VERSION });
    assert.equal(help.action, "print");
    if (help.action !== "print") return;
    assert.match(help.text, /net-bouncer 9\.8\.7/);
    assert.ok(help.text.startsWith(`Usage: net-bouncer -p PORT`));
    for (
      const option of [
        "--port",
        "--log-file",
        "-4",
        "-6",
        "--bind",
        "--format",
        "--ignore",
        "--ignore-file",
        "--listener",
        "--metrics",
        "--help",
        "--version",
      ]
    ) {
      assert.ok(help.text.includes(`${option} `), option);
    }
    for (const line of help.text.split("\n")) assert.ok(line.length <= 100, line);
  }
  assert.deepEqual(parseArgs(["--version"], { version: VERSION }), {
    action: "print",
    text: "net-bouncer 9.8.7\n",
  });
  assert.deepEqual(parseArgs(["-V"], { version: VERSION }), {
    action: "print",
    text: "net-bouncer 9.8.7\n",
  });
});

Deno.test("README.md shows the usage that --help prints", async () => {
  const readme = await Deno.readTextFile(`${ROOT}README.md`);
  const indented = USAGE.split("\n").map((line) => `    ${line}`).join("\n");
  assert.ok(readme.includes(`\n${indented}\n`), `README.md lacks the usage:\n${indented}`);
  const help = parseArgs(["--help"], { version: VERSION });
  assert.ok(help.action === "print" && help.text.includes(USAGE.split("\n")[0]));
});

/** Bad command lines and the exact message of their UsageError. */
const BAD_INPUTS: [string[], string][] = [
  [[], 'Missing "-p PORT": give at least one port'],
  [["-l", "x"], 'Missing "-p PORT": give at least one port'],
  [["-p", "0-5"], 'Cannot listen on port "0": value must be 1-65535'],
  [["-p", "65536"], 'Cannot listen on port "65536": value must be 0-65535'],
  [["-p", "abc"], 'Cannot listen on port "abc": not a number'],
  [["-p", "22-"], 'Cannot listen on ports "22-": a range must be FIRST-LAST'],
  [["-p", "10-5"], 'Cannot listen on ports "10-5": range must be ascending'],
  [["-p", "-1"], 'Cannot listen on port "-1": not a number'],
  [["-p", "1e3"], 'Cannot listen on port "1e3": not a number'],
  [["-p", ""], 'Cannot listen on port "": not a number'],
  [["-p", "22", "--bogus"], 'Unknown option "--bogus": see "net-bouncer --help"'],
  [["-p", "22", "--bogus=1"], 'Unknown option "--bogus": see "net-bouncer --help"'],
  [["-p", "22", "-x"], 'Unknown option "-x": see "net-bouncer --help"'],
  [["-p", "22", "--4"], 'Unknown option "--4": see "net-bouncer --help"'],
  // Flags are single: "-46" is not "-4 -6".
  [["-p", "22", "-46"], 'Unknown option "-46": see "net-bouncer --help"'],
  [["-p", "22", "-4x"], 'Unknown option "-4x": see "net-bouncer --help"'],
  [["-p", "22", "extra"], 'Unexpected argument "extra": net-bouncer takes options only'],
  [["-p", "22", "-"], 'Unexpected argument "-": net-bouncer takes options only'],
  [["-p", "22", "--", "-4"], 'Unexpected argument "-4": net-bouncer takes options only'],
  [["-p"], 'Option "-p" needs a value: SPEC'],
  [["-p", "22", "--log-file"], 'Option "--log-file" needs a value: FILE'],
  [["-p", "22", "--metrics"], 'Option "--metrics" needs a value: ADDRESS:PORT'],
  [["-p", "22", "--help=yes"], 'Option "--help" takes no value'],
  [["-p", "22", "-4", "-6"], 'Options "-4" and "-6" exclude each other'],
  [["-p", "22", "-l", "a", "--log-file", "b"], 'Option "--log-file" given twice: "a" and "b"'],
  [
    ["-p", "22", "--format", "xml"],
    'Option "--format" cannot be "xml": expected one of text, json',
  ],
  [
    ["-p", "22", "--format", "text", "--format=json"],
    'Option "--format" given twice: "text" and "json"',
  ],
  [
    ["-p", "22", "--listener", "fast"],
    'Option "--listener" cannot be "fast": expected one of auto, native, portable',
  ],
  [["-p", "22", "-l", ""], 'Option "-l, --log-file" needs a file path, not an empty value'],
  [["-p", "22", "--log-file="], 'Option "-l, --log-file" needs a file path, not an empty value'],
  [
    ["-p", "22", "--ignore-file", ""],
    'Option "--ignore-file" needs a file path, not an empty value',
  ],
  [
    ["-p", "22", "--metrics", "localhost:9100"],
    'Cannot serve metrics on "localhost:9100": not an IP address (host names are never resolved)',
  ],
  [
    ["-p", "22", "--metrics", "::1:9100"],
    'Cannot serve metrics on "::1:9100": write an IPv6 address in brackets, as "[::1]:9100"',
  ],
  [["-p", "22", "--metrics", "[::1]"], 'Cannot serve metrics on "[::1]": expected ADDRESS:PORT'],
  [
    ["-p", "22", "--metrics", "127.0.0.1"],
    'Cannot serve metrics on "127.0.0.1": expected ADDRESS:PORT',
  ],
  [
    ["-p", "22", "--metrics", "[fe80::1%eth0]:9100"],
    'Cannot serve metrics on "[fe80::1%eth0]:9100": not an IP address',
  ],
  [
    ["-p", "22", "--metrics", "[::1:9100"],
    'Cannot serve metrics on "[::1:9100": expected ADDRESS:PORT',
  ],
  [
    ["-p", "22", "--metrics", "[example.com]:9100"],
    'Cannot serve metrics on "[example.com]:9100": not an IP address',
  ],
  [
    ["-p", "22", "--metrics", "256.0.0.1:9100"],
    'Cannot serve metrics on "256.0.0.1:9100": not an IP address (host names are never resolved)',
  ],
  [
    ["-p", "22", "--metrics", "127.1:9100"],
    'Cannot serve metrics on "127.1:9100": not an IP address (host names are never resolved)',
  ],
  [
    ["-p", "22", "--metrics", "127.0.0.1:65536"],
    'Cannot serve metrics on "127.0.0.1:65536": port must be 0-65535',
  ],
  [
    ["-p", "22", "--metrics", "127.0.0.1:"],
    'Cannot serve metrics on "127.0.0.1:": port must be 0-65535',
  ],
  [
    ["-p", "22", "--metrics", "[::1]:+80"],
    'Cannot serve metrics on "[::1]:+80": port must be 0-65535',
  ],
  // Control characters are escaped, so they cannot drive the terminal or cut the message.
  [["-p", "\x1b[31m"], 'Cannot listen on port "\\x1b[31m": not a number'],
  [["-p", "22\n23"], 'Cannot listen on port "22\\n23": not a number'],
  [
    ["-p", "22", "--bo\x1b]0;owned\x07gus"],
    'Unknown option "--bo\\x1b]0;owned\\x07gus": see "net-bouncer --help"',
  ],
  [
    ["-p", "22", "\r\u202e\x9b"],
    'Unexpected argument "\\r\\u{202e}\\x9b": net-bouncer takes options only',
  ],
  [
    ["-p", "22", "--format", "te\nxt"],
    'Option "--format" cannot be "te\\nxt": expected one of text, json',
  ],
  [
    ["-p", "22", "--metrics", "\x1b:1"],
    'Cannot serve metrics on "\\x1b:1": not an IP address (host names are never resolved)',
  ],
];

Deno.test("parseArgs() turns every bad input into a UsageError with one exact line", () => {
  for (const [args, message] of BAD_INPUTS) {
    assert.throws(() => parseArgs(args, { version: VERSION }), (error: Error) => {
      assert.ok(error instanceof UsageError, JSON.stringify(args));
      assert.equal(error.message, message, JSON.stringify(args));
      // deno-lint-ignore no-control-regex -- no control character may reach the terminal
      assert.doesNotMatch(error.message, /[\x00-\x1f\x7f-\x9f\u2028-\u202e]/);
      return true;
    }, JSON.stringify(args));
  }
});

Deno.test("parseArgs() is linear in the number of options: 80,000 repeated -p, -b and --ignore", () => {
  // Commander copied the collected values for every repetition (80,000 -p took 32 s); the
  // hand-written parser pushes them. Not timed: a quadratic parser makes this test hang.
  const count = 80_000;
  const args: string[] = [];
  for (let i = 0; i < count; i++) args.push("-p", String(1 + (i % 1024)), "-b", "::1");
  for (let i = 0; i < count; i++) args.push(`--ignore=10.0.0.${i % 256}`);
  const result = config(args);
  assert.equal(result.ports.length, 1024);
  assert.equal(result.bind.length, count);
  assert.equal(result.ignore.length, count);
  // The first bad value is found after all of them.
  assert.throws(() => parseArgs([...args, "-p", "x"], { version: VERSION }), {
    message: 'Cannot listen on port "x": not a number',
  });
});
