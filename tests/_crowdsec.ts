/**
 * Test harness: crowdsec (Debian 12 package, 1.4.x) from a config of the test's own (temp dir,
 * own sqlite database, LAPI on a free loopback port, no Central API, no Prometheus, no whitelist
 * parser: the hub's crowdsecurity/whitelists would drop the loopback sources), so the packaged
 * service and its ports 8080/6060 play no part; cscli against it, and a bouncer's view of the
 * LAPI's decisions.
 */
import assert from "node:assert/strict";
import { ROOT, run, waitFor } from "./_util.ts";

/** The contrib files under test. */
export const CONTRIB = `${ROOT}contrib/crowdsec`;
/** The offline hub that the Debian package ships. */
export const HUB_DIR = "/usr/share/crowdsec/hub";
/** Where the Debian package installs the notification plugins (named http, slack, ...). */
export const DEBIAN_PLUGIN_DIR = "/usr/lib/crowdsec/plugins";
/** Grok pattern library that the Debian package ships. */
export const PATTERNS_DIR = "/etc/crowdsec/patterns";
/** Deadline for crowdsec to start (load parsers, open the LAPI port), in milliseconds. */
export const START_TIMEOUT_MS = 30_000;
/** Deadline for a one-shot replay (`crowdsec -dsn ...`) to finish, in milliseconds. */
export const REPLAY_TIMEOUT_MS = 60_000;
/** How long a stopped crowdsec gets after SIGTERM before SIGKILL, in milliseconds. */
export const STOP_GRACE_MS = 5_000;

/** A crowdsec config directory of the test's own. */
export interface CrowdsecConfig {
  dir: string;
  config: string;
  url: string;
}

/**
 * Writes a crowdsec config into `dir`: the contrib parsers and scenario, the hub's syslog-logs
 * (s00-raw: gives evt.Parsed.program and message) and dateparse-enrich (s02), no whitelist.
 * `server` enables the LAPI on `port`; `files` become the acquisition (label type net-bouncer).
 * `bans`: also the bans beyond one address, as shipped (the multi-port scenario, the IPv6 /64
 * postoverflow, contrib's profiles instead of the test's one default profile). `webhook`: the
 * contrib http notification config with this URL, and the touch profile's notifications lines
 * uncommented (the admin's step).
 */
export async function writeConfig(
  dir: string,
  { port, server = true, files = [], bans = false, webhook }: {
    port: number;
    server?: boolean;
    files?: string[];
    bans?: boolean;
    webhook?: string;
  },
): Promise<CrowdsecConfig> {
  for (const sub of ["data", "parsers/s00-raw", "parsers/s01-parse", "parsers/s02-enrich"]) {
    await Deno.mkdir(`${dir}/${sub}`, { recursive: true });
  }
  await Deno.mkdir(`${dir}/scenarios`, { recursive: true });
  await Deno.symlink(PATTERNS_DIR, `${dir}/patterns`);
  await Deno.symlink(
    `${HUB_DIR}/parsers/s00-raw/crowdsecurity/syslog-logs.yaml`,
    `${dir}/parsers/s00-raw/syslog-logs.yaml`,
  );
  await Deno.symlink(
    `${HUB_DIR}/parsers/s02-enrich/crowdsecurity/dateparse-enrich.yaml`,
    `${dir}/parsers/s02-enrich/dateparse-enrich.yaml`,
  );
  for (const name of ["net-bouncer-logs.yaml", "net-bouncer-json-logs.yaml"]) {
    await Deno.copyFile(
      `${CONTRIB}/parsers/s01-parse/${name}`,
      `${dir}/parsers/s01-parse/${name}`,
    );
  }
  await Deno.copyFile(
    `${CONTRIB}/scenarios/net-bouncer-touch.yaml`,
    `${dir}/scenarios/net-bouncer-touch.yaml`,
  );
  // The acquisition is the contrib file with the test's log path in place of /var/log/...
  const acquisition = (await Deno.readTextFile(`${CONTRIB}/acquis.d/net-bouncer.yaml`))
    .replace(/filenames:\n(\s+- .*\n)+/, `filenames:\n${files.map((f) => `  - ${f}\n`).join("")}`);
  assert.match(acquisition, /type: net-bouncer/);
  await Deno.writeTextFile(`${dir}/acquis.yaml`, files.length ? acquisition : "");
  if (bans) {
    await Deno.mkdir(`${dir}/postoverflows/s00-enrich`, { recursive: true });
    await Deno.copyFile(
      `${CONTRIB}/postoverflows/s00-enrich/net-bouncer-ipv6-range.yaml`,
      `${dir}/postoverflows/s00-enrich/net-bouncer-ipv6-range.yaml`,
    );
    await Deno.copyFile(
      `${CONTRIB}/scenarios/net-bouncer-multiport.yaml`,
      `${dir}/scenarios/net-bouncer-multiport.yaml`,
    );
  }
  await Deno.mkdir(`${dir}/notifications`, { recursive: true });
  if (webhook) {
    const notification =
      (await Deno.readTextFile(`${CONTRIB}/notifications/net-bouncer-webhook.yaml`))
        .replace(/^url: .*$/m, `url: ${webhook}`);
    await Deno.writeTextFile(`${dir}/notifications/net-bouncer-webhook.yaml`, notification);
    // Debian 12 ships the plugins as /usr/lib/crowdsec/plugins/http etc., but crowdsec 1.4.6
    // loads only files named TYPE-NAME ("notification-http") and refuses to start otherwise: the
    // plugin directory is one of the config's own with the http plugin under that name (a copy:
    // crowdsec refuses a plugin that is a world-writable file, as a symlink's mode reads).
    await Deno.mkdir(`${dir}/plugins`);
    await Deno.copyFile(`${DEBIAN_PLUGIN_DIR}/http`, `${dir}/plugins/notification-http`);
  }
  await Deno.writeTextFile(`${dir}/simulation.yaml`, "simulation: off\n");
  if (bans) {
    let profiles = await Deno.readTextFile(`${CONTRIB}/profiles/net-bouncer.yaml`);
    if (webhook) {
      profiles = profiles.replace(
        "#notifications:\n#  - net-bouncer-webhook",
        "notifications:\n  - net-bouncer-webhook",
      );
      assert.match(profiles, /^notifications:\n {2}- net-bouncer-webhook$/m);
    }
    await Deno.writeTextFile(`${dir}/profiles.yaml`, profiles);
  } else {
    await Deno.writeTextFile(
      `${dir}/profiles.yaml`,
      [
        "name: default_ip_remediation",
        "filters:",
        ' - Alert.Remediation == true && Alert.GetScope() == "Ip"',
        "decisions:",
        " - type: ban",
        "   duration: 4h",
        "on_success: break",
        "",
      ].join("\n"),
    );
  }
  const url = `http://127.0.0.1:${port}`;
  const config = `${dir}/config.yaml`;
  await Deno.writeTextFile(
    config,
    `common:
  daemonize: false
  log_media: stdout
  log_level: info
  working_dir: .
config_paths:
  config_dir: ${dir}/
  data_dir: ${dir}/data/
  simulation_path: ${dir}/simulation.yaml
  hub_dir: ${HUB_DIR}/
  index_path: ${HUB_DIR}/.index.json
  notification_dir: ${dir}/notifications/
  plugin_dir: ${webhook ? `${dir}/plugins` : DEBIAN_PLUGIN_DIR}/
crowdsec_service:
  acquisition_path: ${dir}/acquis.yaml
  parser_routines: 1
cscli:
  output: human
  color: "no"
db_config:
  log_level: info
  type: sqlite
  db_path: ${dir}/data/crowdsec.db
  use_wal: false
api:
  client:
    insecure_skip_verify: false
    credentials_path: ${dir}/local_api_credentials.yaml
  server:
    enable: ${server}
    log_level: info
    listen_uri: 127.0.0.1:${port}
    profiles_path: ${dir}/profiles.yaml
    console_path: ${dir}/console.yaml
    trusted_ips:
      - 127.0.0.1
      - ::1
plugin_config:
  # Root, not Debian's nobody: the plugin lives in the test's directory, private to root.
  user: root
  group: root
prometheus:
  enabled: false
`,
  );
  return { dir, config, url };
}

/** Runs `cscli -c CONFIG ...args` and returns stdout; throws with stderr on failure. */
export async function cscli(config: string, ...args: string[]): Promise<string> {
  const out = await run("cscli", ["-c", config, ...args], { timeoutMs: START_TIMEOUT_MS });
  if (out.code !== 0) {
    throw new Error(`cscli ${args.join(" ")} failed (${out.code}): ${out.stderr}`);
  }
  return out.stdout;
}

/** Parses `cscli ... -o json` output (crowdsec prints `null` for an empty list). */
export function jsonList<T>(text: string): T[] {
  return (JSON.parse(text) ?? []) as T[];
}

/** An alert as `cscli alerts list -o json` prints it (the fields used here). */
export interface Alert {
  scenario: string;
  machine_id: string;
  source: { scope: string; value: string };
  decisions: { type: string; value: string; scope: string; duration: string }[];
  events: { meta: { key: string; value: string }[] }[];
}

/** A decision as `cscli decisions list -o json` prints it: alerts with their decisions. */
export interface DecisionAlert {
  decisions: {
    type: string;
    value: string;
    scope: string;
    scenario: string;
    origin: string;
    duration: string;
  }[];
}

/** Adds a machine on the LAPI's database and writes its credentials file. */
export async function addMachine(lapi: CrowdsecConfig, name: string, credentialsFile: string) {
  await cscli(
    lapi.config,
    "machines",
    "add",
    name,
    "--auto",
    "--force",
    "-f",
    credentialsFile,
    "--url",
    lapi.url,
  );
}

/** Adds a bouncer with a key of our own (`cscli bouncers add NAME -k KEY`); returns the key. */
export async function addBouncer(lapi: CrowdsecConfig, name: string): Promise<string> {
  const key = crypto.randomUUID().replaceAll("-", "");
  await cscli(lapi.config, "bouncers", "add", name, "-k", key);
  return key;
}

/** A running crowdsec process with its combined output collected. */
export interface Crowdsec {
  child: Deno.ChildProcess;
  output(): string;
  stop(): Promise<void>;
}

/** Starts `crowdsec -c CONFIG ...args`, collecting stdout and stderr. */
export function startCrowdsec(
  config: string,
  args: string[] = [],
  env: Record<string, string> = {},
): Crowdsec {
  const child = new Deno.Command("crowdsec", {
    args: ["-c", config, ...args],
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let text = "";
  const drain = async (stream: ReadableStream<Uint8Array>) => {
    const decoder = new TextDecoder();
    for await (const chunk of stream) text += decoder.decode(chunk, { stream: true });
  };
  const drained = Promise.all([drain(child.stdout), drain(child.stderr)]);
  let exited = false;
  const status = child.status.then((s) => {
    exited = true;
    return s;
  });
  return {
    child,
    output: () => text,
    stop: async () => {
      if (!exited) child.kill("SIGTERM");
      const timer = setTimeout(() => {
        if (!exited) child.kill("SIGKILL");
      }, STOP_GRACE_MS);
      await status;
      clearTimeout(timer);
      await drained;
    },
  };
}

/** Waits until the LAPI answers its health endpoint (or fails with crowdsec's output). */
export async function waitForLapi(url: string, crowdsec: Crowdsec): Promise<void> {
  await waitFor(`LAPI at ${url}\n${crowdsec.output()}`, async () => {
    try {
      const response = await fetch(`${url}/health`);
      await response.body?.cancel();
      return response.ok;
    } catch {
      return false;
    }
  }, { timeoutMs: START_TIMEOUT_MS });
}

/** Waits until crowdsec's output contains `pattern`. */
export async function waitForOutput(
  crowdsec: Crowdsec,
  pattern: RegExp,
  what: string,
): Promise<void> {
  await waitFor(`${what}\n${crowdsec.output()}`, () => pattern.test(crowdsec.output()), {
    timeoutMs: START_TIMEOUT_MS,
  });
}

/** The LAPI's decisions for `ip`, as a bouncer sees them (GET /v1/decisions?ip=...). */
export async function bouncerDecisions(
  url: string,
  key: string,
  ip: string,
): Promise<{ type: string; value: string; scenario: string }[]> {
  const response = await fetch(`${url}/v1/decisions?ip=${encodeURIComponent(ip)}`, {
    headers: { "X-Api-Key": key },
  });
  assert.equal(response.status, 200, `bouncer query for ${ip}`);
  return (await response.json()) ?? [];
}

/** Per-attempt deadline while waiting for an agent's file tail to be live, in milliseconds. */
export const WARMUP_ATTEMPT_MS = 3_000;
/** Bounded number of warm-up connections (startup race between "processing" and the tail). */
export const WARMUP_ATTEMPTS = 5;

/**
 * Connects with `knock` (from `source`) until the bouncer sees a decision for `source`, at most
 * WARMUP_ATTEMPTS times: crowdsec says "Starting processing data" slightly before its file tail
 * is at the end of the file, and a line written in between would not be read.
 */
export async function warmUp(
  url: string,
  key: string,
  source: string,
  knock: () => Promise<unknown>,
): Promise<void> {
  for (let attempt = 1; attempt <= WARMUP_ATTEMPTS; attempt++) {
    await knock();
    try {
      await waitFor(
        `warm-up decision for ${source}`,
        async () => (await bouncerDecisions(url, key, source)).length > 0,
        { timeoutMs: WARMUP_ATTEMPT_MS },
      );
      return;
    } catch (error) {
      if (attempt === WARMUP_ATTEMPTS) throw error;
    }
  }
}
