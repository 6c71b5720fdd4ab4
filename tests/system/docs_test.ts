/**
 * The project's documents agree with each other and with the tree: CHANGELOG.md and the Debian
 * changelog name the same releases on the same dates, the license is stated alike wherever it is
 * stated, every relative link of the Markdown documents leads to a file (and heading) that exists,
 * and every path ARCHITECTURE.md names is in the tree.
 */
import assert from "node:assert/strict";
import { needsTools, ROOT, run } from "../_util.ts";

/** The version in deno.json. */
const DENO_JSON = JSON.parse(Deno.readTextFileSync(`${ROOT}deno.json`));
/** The project's license, as an SPDX identifier. */
const LICENSE_ID = "Apache-2.0";
/** The longest the README may grow: it is a guide, the details live in docs/ and the man page. */
const README_MAX_LINES = 350;

/** A release: its version and its date (YYYY-MM-DD). */
interface Release {
  version: string;
  date: string;
}

/** The releases of a Keep a Changelog text ("## 1.2.3 - 2026-11-25" or "## [1.2.3] - ..."). */
function markdownReleases(text: string): Release[] {
  return [...text.matchAll(/^## \[?(\d[^\]\s]*)\]? - (\d{4}-\d{2}-\d{2})\s*$/gm)]
    .map(([, version, date]) => ({ version, date }));
}

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/** The entries of a Debian changelog: each header's version, each trailer's date as written. */
function debianReleases(text: string): Release[] {
  const versions = [...text.matchAll(/^\S+ \(([^)]+)\) /gm)].map((match) => match[1]);
  const dates = [...text.matchAll(/^ -- .+? {2}\w{3}, (\d{2}) (\w{3}) (\d{4}) /gm)].map(
    ([, day, month, year]) =>
      `${year}-${String(MONTHS.indexOf(month) + 1).padStart(2, "0")}-${day}`,
  );
  assert.equal(dates.length, versions.length, "a Debian changelog entry without its trailer line");
  return versions.map((version, i) => ({ version, date: dates[i] }));
}

/** How CHANGELOG.md and the Debian changelog disagree: one line per difference, none if they agree. */
function changelogDifferences(markdown: string, debian: string): string[] {
  const ours = markdownReleases(markdown);
  const theirs = debianReleases(debian);
  const differences: string[] = [];
  for (let i = 0; i < Math.max(ours.length, theirs.length); i++) {
    const [a, b] = [ours[i], theirs[i]];
    if (a?.version !== b?.version || a?.date !== b?.date) {
      const show = (release?: Release) =>
        release ? `${release.version} of ${release.date}` : "nothing";
      differences.push(`entry ${i + 1}: CHANGELOG.md has ${show(a)}, Debian ${show(b)}`);
    }
  }
  return differences;
}

Deno.test("changelog: CHANGELOG.md and the Debian changelog list the same releases and dates", () => {
  const markdown = Deno.readTextFileSync(`${ROOT}CHANGELOG.md`);
  const debian = Deno.readTextFileSync(`${ROOT}contrib/debian/changelog`);
  assert.match(markdown, /^# Changelog\n/);
  assert.match(markdown, /^## \[?Unreleased\]?\s*$/m, "Keep a Changelog has an Unreleased section");
  assert.ok(markdownReleases(markdown).length > 0, "no release heading in CHANGELOG.md");
  assert.deepEqual(changelogDifferences(markdown, debian), []);
  // deno.json's version is a release, so the package's changelog needs no made-up entry.
  assert.ok(
    markdownReleases(markdown).some((release) => release.version === DENO_JSON.version),
    `deno.json's version ${DENO_JSON.version} has no section in CHANGELOG.md`,
  );
});

Deno.test("changelog: the comparison finds a version or a date that differs, or a missing entry", () => {
  const debian = "net-bouncer (0.2.0) unstable; urgency=medium\n\n  * Two.\n\n" +
    " -- A <a@example.org>  Tue, 01 Dec 2026 10:00:00 +0000\n\n" +
    "net-bouncer (0.1.0) unstable; urgency=medium\n\n  * One.\n\n" +
    " -- A <a@example.org>  Wed, 25 Nov 2026 15:00:00 +0000\n";
  const agree = "## Unreleased\n\n## [0.2.0] - 2026-12-01\n\n## 0.1.0 - 2026-11-25\n";
  assert.deepEqual(changelogDifferences(agree, debian), []);
  assert.deepEqual(changelogDifferences(agree.replace("2026-12-01", "2026-12-02"), debian), [
    "entry 1: CHANGELOG.md has 0.2.0 of 2026-12-02, Debian 0.2.0 of 2026-12-01",
  ]);
  assert.deepEqual(changelogDifferences("## Unreleased\n\n## 0.1.0 - 2026-11-25\n", debian), [
    "entry 1: CHANGELOG.md has 0.1.0 of 2026-11-25, Debian 0.2.0 of 2026-12-01",
    "entry 2: CHANGELOG.md has nothing, Debian 0.1.0 of 2026-11-25",
  ]);
});

Deno.test({
  name: "changelog: dpkg-parsechangelog reads the Debian changelog, newest entry first",
  ignore: needsTools("dpkg-parsechangelog"),
  async fn() {
    const result = await run("dpkg-parsechangelog", [
      "-l",
      `${ROOT}contrib/debian/changelog`,
      "--all",
      "--format",
      "rfc822",
    ]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stderr, "");
    const versions = [...result.stdout.matchAll(/^Version: (.+)$/gm)].map((match) => match[1]);
    const debian = Deno.readTextFileSync(`${ROOT}contrib/debian/changelog`);
    assert.deepEqual(versions, debianReleases(debian).map((release) => release.version));
  },
});

Deno.test("license: Apache-2.0 in LICENSE, deno.json, the Debian copyright and the man page", () => {
  const license = Deno.readTextFileSync(`${ROOT}LICENSE`);
  assert.match(license, /^\s+Apache License\n\s+Version 2\.0, January 2004\n/);
  assert.match(license, /END OF TERMS AND CONDITIONS/);
  assert.equal(DENO_JSON.license, LICENSE_ID);
  const copyright = Deno.readTextFileSync(`${ROOT}contrib/debian/copyright`);
  // DEP-5: the package's own files, and a stand-alone paragraph for the license they name.
  assert.match(copyright, new RegExp(`^Files: \\*\\nCopyright: .+\\nLicense: ${LICENSE_ID}$`, "m"));
  assert.match(copyright, new RegExp(`^License: ${LICENSE_ID}\\n [^\\n]+`, "m"));
  assert.match(copyright, /\/usr\/share\/common-licenses\/Apache-2\.0/);
  assert.doesNotMatch(copyright, /unspecified/i);
  const man = Deno.readTextFileSync(`${ROOT}contrib/man/net-bouncer.1`);
  assert.match(man, new RegExp(`^\\.\\\\" SPDX-License-Identifier: ${LICENSE_ID}$`, "m"));
  assert.match(man, new RegExp(`^\\.SH COPYRIGHT\\n[\\s\\S]*SPDX: ${LICENSE_ID}`, "m"));
  const readme = Deno.readTextFileSync(`${ROOT}README.md`);
  const last = readme.slice(readme.lastIndexOf("\n## "));
  assert.match(last, /^\n## License\n/, "the README's last section is the license");
  assert.match(last, /Apache License 2\.0/);
  assert.match(last, /\(LICENSE\)/);
});

/** The Markdown documents of the project. */
function documents(): string[] {
  const docs = [...Deno.readDirSync(`${ROOT}docs`)]
    .filter((entry) => entry.isFile && entry.name.endsWith(".md"))
    .map((entry) => `docs/${entry.name}`);
  return ["README.md", "ARCHITECTURE.md", "CHANGELOG.md", ...docs.sort()];
}

/** GitHub's anchor of a heading: lower case, punctuation dropped, spaces as hyphens. */
function anchorOf(heading: string): string {
  return heading.trim().toLowerCase().replace(/[^\p{L}\p{N} _-]/gu, "").replaceAll(" ", "-");
}

/** The anchors of a Markdown text's headings (outside code blocks). */
function anchorsOf(text: string): Set<string> {
  const prose = text.replace(/^```[\s\S]*?^```$/gm, "");
  return new Set([...prose.matchAll(/^#{1,6} (.+)$/gm)].map((match) => anchorOf(match[1])));
}

Deno.test("docs: every relative link leads to a file, and every anchor to a heading", () => {
  for (const document of documents()) {
    const text = Deno.readTextFileSync(`${ROOT}${document}`);
    const dir = document.includes("/") ? document.slice(0, document.lastIndexOf("/") + 1) : "";
    const prose = text.replace(/^```[\s\S]*?^```$/gm, "");
    for (const [, target] of prose.matchAll(/\]\(([^)\s]+)\)/g)) {
      if (/^[a-z]+:/.test(target)) continue; // https:, mailto:
      const [path, anchor = null] = target.split("#");
      const file = path === "" ? document : new URL(path, `file:///${dir}`).pathname.slice(1);
      let stat: Deno.FileInfo;
      try {
        stat = Deno.statSync(`${ROOT}${file}`);
      } catch {
        assert.fail(`${document} links to ${target}: no such file`);
      }
      if (anchor === null) continue;
      assert.ok(stat.isFile && file.endsWith(".md"), `${document}: ${target} is no document`);
      const anchors = anchorsOf(Deno.readTextFileSync(`${ROOT}${file}`));
      assert.ok(anchors.has(anchor), `${document} links to ${target}: no such heading`);
    }
  }
});

Deno.test("docs: every path that ARCHITECTURE.md names exists", () => {
  const text = Deno.readTextFileSync(`${ROOT}ARCHITECTURE.md`);
  const paths = [
    ...new Set(
      [...text.matchAll(/`((?:lib|tests|scripts|contrib|docs|\.ci)\/[\w./-]*|main\.ts)`/g)]
        .map((match) => match[1]),
    ),
  ];
  assert.ok(paths.length >= 20, `paths found: ${paths.join(", ")}`);
  for (const path of paths) {
    try {
      Deno.statSync(`${ROOT}${path}`);
    } catch {
      assert.fail(`ARCHITECTURE.md names ${path}, which does not exist`);
    }
  }
});

Deno.test("docs: the README is a guide of at most 350 lines", () => {
  const lines = Deno.readTextFileSync(`${ROOT}README.md`).split("\n").length - 1;
  assert.ok(lines <= README_MAX_LINES, `README.md has ${lines} lines`);
});
