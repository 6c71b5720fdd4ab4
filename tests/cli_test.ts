import assert from "node:assert/strict";
import { parseArgs } from "../lib/cli.ts";
import { UsageError } from "../lib/errors.ts";

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
  });
  const full = config([
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
    "--ignore-file",
    "f",
  ]);
  assert.equal(full.logFile, "/var/log/x.log");
  assert.equal(full.family, "ipv6");
  assert.deepEqual(full.bind, ["::1", "[0:0::1]"]);
  assert.equal(full.format, "json");
  assert.deepEqual(full.ignore, ["10.0.0.0/8"]);
  assert.equal(full.ignoreFile, "f");
  assert.equal(config(["-4", "-p", "1"]).family, "ipv4");
});

Deno.test("parseArgs() prints help and version", () => {
  for (const flag of ["--help", "-h"]) {
    const help = parseArgs([flag], { version: VERSION });
    assert.equal(help.action, "print");
    if (help.action !== "print") return;
    assert.match(help.text, /net-bouncer 9\.8\.7/);
    for (const option of ["--port", "--log-file", "-4", "-6", "--bind", "--format", "--ignore"]) {
      assert.ok(help.text.includes(option), option);
    }
  }
  assert.deepEqual(parseArgs(["--version"], { version: VERSION }), {
    action: "print",
    text: "9.8.7\n",
  });
});

Deno.test("parseArgs() turns every bad input into one UsageError line", () => {
  const cases: [string[], RegExp][] = [
    [[], /^Missing "-p PORT": give at least one port$/],
    [["-p", "0"], /^Cannot listen on port "0": value must be 1-65535$/],
    [["-p", "65536"], /"65536"/],
    [["-p", "abc"], /"abc"/],
    [["-p", "22-"], /"22-"/],
    [["-p", "10-5"], /"10-5": range must be ascending/],
    [["-p", "-1"], /"-1"/],
    [["-p", "1e3"], /"1e3"/],
    [["-p", "22", "--bogus"], /^Unknown option "--bogus"$/],
    [["-p", "22", "extra"], /^Too many arguments/],
    [["-p"], /^Option "-p, --port <spec>" argument missing$/],
    [["-p", "22", "-4", "-6"], /^Options "-4" and "-6" exclude each other$/],
    [["-p", "22", "--format", "xml"], /"xml" is invalid/],
    [["-p", "22", "--format", "xml"], /: allowed choices are text, json$/],
  ];
  for (const [args, message] of cases) {
    assert.throws(() => parseArgs(args, { version: VERSION }), (error: Error) => {
      assert.ok(error instanceof UsageError, args.join(" "));
      assert.match(error.message, message, args.join(" "));
      assert.ok(!error.message.includes("\n"));
      return true;
    });
  }
});
