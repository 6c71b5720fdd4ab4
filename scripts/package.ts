/**
 * Builds the Debian package `net-bouncer_VERSION_ARCH.deb` from a compiled binary with Debian's
 * own `dpkg-deb` (no third-party packager):
 *
 *     deno task package --binary dist/net-bouncer --arch amd64 --out dist/
 *
 * Contents: the binary in /usr/bin, the systemd units of contrib/systemd in
 * /usr/lib/systemd/system (their ExecStart= rewritten from /usr/local/bin, where the tarball's
 * install.sh puts the binary), the fail2ban filter, jail and actions and the logrotate config
 * under /etc as conffiles, the README, copyright and changelog in /usr/share/doc/net-bouncer (the
 * CrowdSec files under its examples/crowdsec) and the man page. The control file and the
 * maintainer scripts are templates in contrib/debian.
 */
import { createHash } from "node:crypto";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

/** The project root (absolute path, with a trailing slash). */
export const ROOT: string = fileURLToPath(new URL("..", import.meta.url));
/** The package's name. */
export const PACKAGE = "net-bouncer";
/**
 * The unit that the package enables and starts on installation and restarts on upgrade. The
 * others in contrib/systemd are installed but left for the admin to choose.
 */
export const RECOMMENDED_UNIT = "net-bouncer-activated.socket";
/** Where the package installs the binary. */
export const BINARY_PATH = "/usr/bin/net-bouncer";
/** Where contrib/systemd's units say the binary is (scripts/install.sh puts it there). */
export const TARBALL_BINARY_PATH = "/usr/local/bin/net-bouncer";
/** Where the package installs the systemd units. */
export const UNIT_DIR = "/usr/lib/systemd/system";
/** Configuration files: source in the checkout, installed path (a dpkg conffile each). */
export const CONFFILES: readonly (readonly [string, string])[] = [
  ["contrib/fail2ban/filter.d/net-bouncer.conf", "/etc/fail2ban/filter.d/net-bouncer.conf"],
  ["contrib/fail2ban/jail.d/net-bouncer.conf", "/etc/fail2ban/jail.d/net-bouncer.conf"],
  ...[
    "net-bouncer-nftables-subnet.conf",
    "net-bouncer-iptables-subnet.conf",
    "net-bouncer-webhook.conf",
  ].map((name) => [`contrib/fail2ban/action.d/${name}`, `/etc/fail2ban/action.d/${name}`] as const),
  ["contrib/logrotate/net-bouncer", "/etc/logrotate.d/net-bouncer"],
];
/** The man page: source in the checkout, installed path (gzipped). */
export const MAN_PAGE: readonly [string, string] = [
  "contrib/man/net-bouncer.1",
  "/usr/share/man/man1/net-bouncer.1.gz",
];
/** The documentation directory. */
export const DOC_DIR = `/usr/share/doc/${PACKAGE}`;
/**
 * Files the admin copies into place (CrowdSec's configuration belongs to its own package and
 * needs the admin's choices): source in the checkout, installed path under the examples.
 */
export const EXAMPLES: readonly (readonly [string, string])[] = [
  "acquis.d/net-bouncer.yaml",
  "acquis.d/net-bouncer-journal.yaml",
  "parsers/s01-parse/net-bouncer-logs.yaml",
  "parsers/s01-parse/net-bouncer-json-logs.yaml",
  "scenarios/net-bouncer-touch.yaml",
  "scenarios/net-bouncer-multiport.yaml",
  "postoverflows/s00-enrich/net-bouncer-ipv6-range.yaml",
  "profiles/net-bouncer.yaml",
  "notifications/net-bouncer-webhook.yaml",
].map((path) => [`contrib/crowdsec/${path}`, `${DOC_DIR}/examples/crowdsec/${path}`]);
/** lintian's overrides: what it reports on Deno's runtime that the package cannot change. */
export const LINTIAN_OVERRIDES: readonly [string, string] = [
  "contrib/debian/lintian-overrides",
  `/usr/share/lintian/overrides/${PACKAGE}`,
];
/** Debian's name for each CPU architecture Deno reports (Deno.build.arch). */
export const DEBIAN_ARCH_OF: Readonly<Record<string, string>> = {
  x86_64: "amd64",
  aarch64: "arm64",
};
/** Shared libraries a binary may need, and the Debian package that provides each. */
const PACKAGE_OF_LIBRARY: Readonly<Record<string, string>> = {
  "libc.so.6": "libc6",
  "libm.so.6": "libc6",
  "libdl.so.2": "libc6",
  "libpthread.so.0": "libc6",
  "librt.so.1": "libc6",
  "ld-linux-x86-64.so.2": "libc6",
  "ld-linux-aarch64.so.1": "libc6",
  "libgcc_s.so.1": "libgcc-s1",
};
/** Symbol version prefix that sets the minimum version of each package. */
const VERSION_PREFIX_OF_PACKAGE: Readonly<Record<string, string>> = {
  libc6: "GLIBC_",
  "libgcc-s1": "GCC_",
};
/** Maintainer scripts in contrib/debian (mode 0755 in the package). */
const MAINTAINER_SCRIPTS = ["preinst", "postinst", "prerm", "postrm"];

/** A problem with the inputs of a package build (bad option, missing file, bad unit). */
export class PackageError extends Error {
  /** Creates a package error with a message for the user. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "PackageError";
  }
}

/** Options of {@linkcode buildPackage}. */
export interface PackageOptions {
  /** Debian architecture (amd64, arm64, ...); default: this machine's. */
  arch?: string;
  /** Package version; default: deno.json's. */
  version?: string;
  /** The checkout to take contrib/ and README.md from; default: this one. */
  root?: string;
  /** The changelog entry's date for a version the changelog lacks; default: now. */
  date?: Date;
  /** Compress with gzip -1 instead of xz (as Debian's archive does): for tests, 20 times faster. */
  fast?: boolean;
}

/** Debian's name for this machine's architecture. */
export function hostArch(): string {
  const arch = DEBIAN_ARCH_OF[Deno.build.arch];
  if (!arch) throw new PackageError(`No Debian architecture for "${Deno.build.arch}"`);
  return arch;
}

/** The systemd units of a checkout (contrib/systemd/*.service and *.socket), sorted. */
export function unitNames(root: string = ROOT): string[] {
  return [...Deno.readDirSync(`${root}contrib/systemd`)]
    .filter((entry) => entry.isFile && /\.(service|socket)$/.test(entry.name))
    .map((entry) => entry.name)
    .sort();
}

/** A unit file as the package installs it: the binary at /usr/bin instead of /usr/local/bin. */
export function rewriteUnit(text: string): string {
  return text.replaceAll(TARBALL_BINARY_PATH, BINARY_PATH);
}

/** Whether a unit file can be enabled (has an [Install] section with a setting). */
export function hasInstallSection(text: string): boolean {
  const match = /^\[Install\]\s*$([\s\S]*?)(?=^\[|(?![\s\S]))/m.exec(text);
  return match !== null && /^\s*\w+\s*=/m.test(match[1]);
}

/** The `.deb` file name of a version and architecture. */
export function debFileName(version: string, arch: string): string {
  return `${PACKAGE}_${version}_${arch}.deb`;
}

async function run(cmd: string, args: string[]): Promise<string> {
  let output: Deno.CommandOutput;
  try {
    output = await new Deno.Command(cmd, { args, stdin: "null" }).output();
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new PackageError(`Cannot run "${cmd}": not installed (.ci/install_package.sh)`);
    }
    throw error;
  }
  const decoder = new TextDecoder();
  if (!output.success) {
    const detail = decoder.decode(output.stderr).trim().split("\n")[0];
    throw new PackageError(`"${cmd} ${args.join(" ")}" failed: ${detail}`);
  }
  return decoder.decode(output.stdout);
}

/** Whether a file starts with the ELF magic number. */
function isElf(path: string): boolean {
  const file = Deno.openSync(path);
  try {
    const head = new Uint8Array(4);
    const n = file.readSync(head);
    return n === 4 && head[0] === 0x7f && head[1] === 0x45 && head[2] === 0x4c && head[3] === 0x46;
  } finally {
    file.close();
  }
}

/** Compares dotted version numbers ("2.34" < "2.4" is false). */
function compareVersions(a: string, b: string): number {
  const x = a.split(".").map(Number);
  const y = b.split(".").map(Number);
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    const difference = (x[i] ?? 0) - (y[i] ?? 0);
    if (difference !== 0) return difference;
  }
  return 0;
}

/**
 * The Depends: field of a binary, computed from the binary itself because dpkg-shlibdeps reads
 * only binaries of the build machine's architecture: each shared library it needs (readelf -d)
 * mapped to its package, at least the newest symbol version it uses (readelf -V). That is the
 * real minimum (dpkg-shlibdeps' symbols files may ask for more: libc6 2.34 where a binary links
 * libpthread.so.0). An empty string for a script. A library the table does not know is an
 * error, never a missing dependency.
 */
export async function dependsOf(binary: string): Promise<string> {
  if (!isElf(binary)) return "";
  const dynamic = await run("readelf", ["-d", "-W", binary]);
  const needed = [...dynamic.matchAll(/\(NEEDED\)\s+Shared library: \[([^\]]+)\]/g)].map((m) =>
    m[1]
  );
  const versions = await run("readelf", ["-V", "-W", binary]);
  const packages = new Map<string, string>();
  for (const library of needed) {
    const name = PACKAGE_OF_LIBRARY[library];
    if (!name) throw new PackageError(`Unknown shared library "${library}" in "${binary}"`);
    packages.set(name, "");
  }
  for (const [name] of packages) {
    const prefix = VERSION_PREFIX_OF_PACKAGE[name];
    const pattern = new RegExp(`Name: ${prefix}(\\d+(?:\\.\\d+)*)`, "g");
    for (const [, version] of versions.matchAll(pattern)) {
      if (compareVersions(version, packages.get(name) || "0") > 0) packages.set(name, version);
    }
  }
  return [...packages].sort(([a], [b]) => a.localeCompare(b))
    .map(([name, version]) => version ? `${name} (>= ${version})` : name)
    .join(", ");
}

/** Fills `@NAME@` placeholders; a placeholder without a value is an error. */
export function fillTemplate(text: string, values: Record<string, string>): string {
  return text.replace(/@([A-Z_]+)@/g, (_, name: string) => {
    if (!(name in values)) throw new PackageError(`Unknown placeholder "@${name}@"`);
    return values[name];
  });
}

/** An RFC 5322 date as Debian changelogs write it: "Wed, 25 Nov 2026 15:00:00 +0000". */
function changelogDate(date: Date): string {
  return date.toUTCString().replace("GMT", "+0000").replace(/^(\w+), (\d) /, "$1, 0$2 ");
}

/**
 * The changelog for `version`: contrib/debian/changelog, with an entry for `version` on top when
 * its newest entry is another version (a build between releases, or a test's).
 */
export function changelogFor(text: string, version: string, date: Date): string {
  const top = /^\S+ \(([^)]+)\)/.exec(text);
  if (top?.[1] === version) return text;
  const maintainer = /^ -- (.+?) {2}/m.exec(text)?.[1];
  if (!maintainer) throw new PackageError("contrib/debian/changelog has no entry");
  return `${PACKAGE} (${version}) unstable; urgency=medium\n\n` +
    `  * Version ${version} of net-bouncer (see the README and the release notes).\n\n` +
    ` -- ${maintainer}  ${changelogDate(date)}\n\n${text}`;
}

async function gzipInto(source: Uint8Array, target: string): Promise<void> {
  // gzip -9n: maximum compression and no name or time stamp (Debian policy 12.3, reproducible).
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command("gzip", { args: ["-9n"], stdin: "piped", stdout: "piped" }).spawn();
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
    throw new PackageError('Cannot run "gzip": not installed', { cause: error });
  }
  const writer = child.stdin.getWriter();
  await writer.write(source);
  await writer.close();
  const output = await child.output();
  if (!output.success) throw new PackageError(`gzip failed for "${target}"`);
  await Deno.writeFile(target, output.stdout);
}

async function writeInto(
  tree: string,
  path: string,
  data: Uint8Array | string,
  mode: number,
): Promise<void> {
  const target = `${tree}${path}`;
  await Deno.mkdir(target.slice(0, target.lastIndexOf("/")), { recursive: true });
  if (typeof data === "string") await Deno.writeTextFile(target, data);
  else await Deno.writeFile(target, data);
  await Deno.chmod(target, mode);
}

/** Every file and directory below `dir`, as paths relative to it, sorted. */
function walk(dir: string, prefix = ""): { path: string; isDirectory: boolean }[] {
  const entries = [];
  for (
    const entry of [...Deno.readDirSync(`${dir}${prefix}`)].sort((a, b) =>
      a.name.localeCompare(b.name)
    )
  ) {
    const path = `${prefix}/${entry.name}`;
    entries.push({ path, isDirectory: entry.isDirectory });
    if (entry.isDirectory) entries.push(...walk(dir, path));
  }
  return entries;
}

/**
 * Builds `net-bouncer_VERSION_ARCH.deb` in `outDir` from the executable `binary`; returns the
 * path of the .deb.
 *
 * @throws {PackageError} on a bad input (missing binary, bad version, unit without [Install]).
 */
export async function buildPackage(
  binary: string,
  outDir: string,
  options: PackageOptions = {},
): Promise<string> {
  const root = options.root ?? ROOT;
  const arch = options.arch ?? hostArch();
  const version = options.version ??
    JSON.parse(Deno.readTextFileSync(`${root}deno.json`)).version;
  if (!/^[0-9][A-Za-z0-9.+~]*$/.test(version)) {
    throw new PackageError(`Invalid version "${version}": digits, letters, ".", "+", "~" only`);
  }
  if (!/^[a-z0-9][a-z0-9-]*$/.test(arch)) throw new PackageError(`Invalid arch "${arch}"`);
  try {
    if (!Deno.statSync(binary).isFile) throw new PackageError(`Not a file: "${binary}"`);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new PackageError(`Cannot read binary "${binary}": no such file`);
    }
    throw error;
  }

  const units = unitNames(root);
  const unitTexts = new Map(
    units.map((unit) => [unit, Deno.readTextFileSync(`${root}contrib/systemd/${unit}`)]),
  );
  if (!units.includes(RECOMMENDED_UNIT)) {
    throw new PackageError(`The recommended unit "${RECOMMENDED_UNIT}" is not in contrib/systemd`);
  }
  const installUnits = units.filter((unit) => hasInstallSection(unitTexts.get(unit)!));
  if (!installUnits.includes(RECOMMENDED_UNIT)) {
    throw new PackageError(
      `Cannot enable "${RECOMMENDED_UNIT}": it has no [Install] section (WantedBy=)`,
    );
  }
  const values: Record<string, string> = {
    VERSION: version,
    ARCH: arch,
    RECOMMENDED_UNIT,
    // Sockets first: stopping a socket before its service keeps it from starting the service again.
    UNITS: [...units].sort((a, b) => Number(b.endsWith(".socket")) - Number(a.endsWith(".socket")))
      .join(" "),
    OTHER_UNITS: installUnits.filter((unit) => unit !== RECOMMENDED_UNIT).join(" "),
    INSTALL_UNITS: installUnits.join(" "),
    SERVICES: units.filter((unit) => unit.endsWith(".service")).join(" "),
  };

  const tree = await Deno.makeTempDir({ prefix: "net-bouncer-package-" });
  try {
    const decoder = new TextDecoder();
    await writeInto(tree, BINARY_PATH, await Deno.readFile(binary), 0o755);
    for (const [unit, text] of unitTexts) {
      await writeInto(tree, `${UNIT_DIR}/${unit}`, rewriteUnit(text), 0o644);
    }
    for (const [source, target] of [...CONFFILES, ...EXAMPLES]) {
      await writeInto(tree, target, await Deno.readFile(`${root}${source}`), 0o644);
    }
    await writeInto(
      tree,
      `${DOC_DIR}/copyright`,
      await Deno.readFile(`${root}contrib/debian/copyright`),
      0o644,
    );
    await writeInto(
      tree,
      LINTIAN_OVERRIDES[1],
      await Deno.readFile(`${root}${LINTIAN_OVERRIDES[0]}`),
      0o644,
    );
    await Deno.mkdir(`${tree}${DOC_DIR}`, { recursive: true });
    await gzipInto(await Deno.readFile(`${root}README.md`), `${tree}${DOC_DIR}/README.md.gz`);
    const changelog = changelogFor(
      Deno.readTextFileSync(`${root}contrib/debian/changelog`),
      version,
      options.date ?? new Date(),
    );
    await gzipInto(new TextEncoder().encode(changelog), `${tree}${DOC_DIR}/changelog.gz`);
    await Deno.mkdir(`${tree}${MAN_PAGE[1].slice(0, MAN_PAGE[1].lastIndexOf("/"))}`, {
      recursive: true,
    });
    await gzipInto(await Deno.readFile(`${root}${MAN_PAGE[0]}`), `${tree}${MAN_PAGE[1]}`);

    // Sizes and checksums of the data part, before DEBIAN/ exists.
    const conffiles = new Set(CONFFILES.map(([, target]) => target));
    let installedKiB = 0;
    const md5sums: string[] = [];
    for (const { path, isDirectory } of walk(tree)) {
      if (isDirectory) {
        await Deno.chmod(`${tree}${path}`, 0o755);
        installedKiB += 1;
        continue;
      }
      const data = await Deno.readFile(`${tree}${path}`);
      // As dpkg-gencontrol counts: each file rounded up to whole KiB, each directory 1 KiB.
      installedKiB += Math.max(1, Math.ceil(data.length / 1024));
      // dh_md5sums leaves conffiles out: dpkg keeps their checksums itself.
      if (!conffiles.has(path)) {
        md5sums.push(`${createHash("md5").update(data).digest("hex")}  ${path.slice(1)}`);
      }
    }

    const depends = await dependsOf(binary);
    // The tree's root becomes the root directory's entry in the package ("./").
    await Deno.chmod(tree, 0o755);
    await Deno.mkdir(`${tree}/DEBIAN`, { mode: 0o755 });
    await Deno.chmod(`${tree}/DEBIAN`, 0o755);
    const control = fillTemplate(
      decoder.decode(await Deno.readFile(`${root}contrib/debian/control`)),
      {
        ...values,
        INSTALLED_SIZE: String(installedKiB),
        DEPENDS: depends ? `Depends: ${depends}\n` : "",
      },
    );
    await writeInto(tree, "/DEBIAN/control", control, 0o644);
    await writeInto(tree, "/DEBIAN/md5sums", `${md5sums.join("\n")}\n`, 0o644);
    await writeInto(tree, "/DEBIAN/conffiles", `${[...conffiles].join("\n")}\n`, 0o644);
    for (const script of MAINTAINER_SCRIPTS) {
      const text = Deno.readTextFileSync(`${root}contrib/debian/${script}`);
      await writeInto(tree, `/DEBIAN/${script}`, fillTemplate(text, values), 0o755);
    }

    await Deno.mkdir(outDir, { recursive: true });
    const deb = `${outDir.replace(/\/+$/, "")}/${debFileName(version, arch)}`;
    // --root-owner-group: every file root:root without fakeroot; xz as Debian's archive uses.
    const compression = options.fast ? ["-Zgzip", "-z1"] : ["-Zxz"];
    await run("dpkg-deb", ["--root-owner-group", ...compression, "--build", tree, deb]);
    return deb;
  } finally {
    await Deno.remove(tree, { recursive: true });
  }
}

const USAGE =
  "usage: deno task package --binary FILE [--arch ARCH] [--out DIR] [--version VERSION]";

/** `deno task package`: parses the options, builds the package; returns the exit code. */
async function main(args: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      options: {
        binary: { type: "string" },
        arch: { type: "string" },
        out: { type: "string", default: "dist" },
        version: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    // node:util's messages quote with '...': the project's messages use "...".
    const message = (error as Error).message.split("\n")[0].replaceAll("'", '"');
    console.error(`package: error: ${message} (${USAGE})`);
    return 2;
  }
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (!values.binary) {
    console.error(`package: error: Missing "--binary FILE" (${USAGE})`);
    return 2;
  }
  try {
    const deb = await buildPackage(values.binary, values.out, {
      arch: values.arch,
      version: values.version,
    });
    console.log(deb);
    return 0;
  } catch (error) {
    if (!(error instanceof PackageError)) throw error;
    console.error(`package: error: ${error.message}`);
    return 1;
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
