/**
 * The `process_*` figures that Prometheus client libraries export. Memory needs no permission;
 * CPU times come from node:process (getrusage(2)), loaded only where metrics are served; the
 * descriptors from /proc/self, read through libc where it is loaded (the daemon revokes Deno's
 * read permission then), else through Deno while it may read.
 */
import type { Libc } from "../linux/libc.ts";
import { SYS_GETDENTS64 } from "../linux/libc.ts";
import { openFile } from "../linux/regular_file.ts";

/** The process's figures. */
export interface ProcessStats {
  /** Resident memory, in bytes. */
  residentBytes: number;
  /** User and system CPU time, in seconds (`null` until node:process is loaded). */
  cpuSeconds: number | null;
  /** Open file descriptors, or `null` where /proc/self cannot be read. */
  openFds: number | null;
  /** The soft limit on file descriptors, or `null` where /proc/self cannot be read. */
  maxFds: number | null;
}

type CpuUsage = () => { user: number; system: number };
let cpuUsage: CpuUsage | null = null;
let cpuUsageLoading = false;

/** Loads node:process for its CPU times, once (loaded at start-up it would cost every daemon). */
function loadCpuUsage(): void {
  if (cpuUsageLoading) return;
  cpuUsageLoading = true;
  import("node:process").then(({ default: process }) => cpuUsage = () => process.cpuUsage());
}

const O_DIRECTORY = 0o200000;
const DIRENT_BUFFER_BYTES = 32 * 1024;
const decoder = new TextDecoder();

/** Reads /proc/self files and counts /proc/self/fd: through Deno, or through libc. */
interface ProcReader {
  text(path: string): string;
  entries(path: string): number;
}

function denoReader(): ProcReader {
  return {
    text: (path) => Deno.readTextFileSync(path),
    entries: (path) => [...Deno.readDirSync(path)].length - 1, // less the directory's own
  };
}

function libcReader(libc: Libc): ProcReader {
  return {
    text(path) {
      const file = openFile(libc, path, 0);
      try {
        const buffer = new Uint8Array(8192);
        let length = 0;
        for (let n; length < buffer.length && (n = file.readSync(buffer.subarray(length)));) {
          length += n;
        }
        return decoder.decode(buffer.subarray(0, length));
      } finally {
        file.close();
      }
    },
    entries(path) {
      const dir = openFile(libc, path, O_DIRECTORY);
      try {
        const buffer = new Uint8Array(DIRENT_BUFFER_BYTES);
        const view = new DataView(buffer.buffer);
        let count = 0;
        while (true) {
          const read = Number(
            libc.symbols.getdents64(SYS_GETDENTS64, dir.fd, buffer, DIRENT_BUFFER_BYTES),
          );
          if (read <= 0) break;
          // struct linux_dirent64: d_ino, d_off (8 bytes each), d_reclen (2), d_type, d_name.
          for (let offset = 0; offset < read; offset += view.getUint16(offset + 16, true)) {
            const name = buffer[offset + 19];
            const dots = name === 0x2e &&
              (buffer[offset + 20] === 0 ||
                (buffer[offset + 20] === 0x2e && buffer[offset + 21] === 0));
            if (!dots) count++;
          }
        }
        return count - 1; // less the directory's own descriptor
      } finally {
        dir.close();
      }
    },
  };
}

/** A source of the process's figures now; `libc` (when loaded) reads /proc/self. */
export function processStats(options: { libc?: Libc | null } = {}): () => ProcessStats {
  const reader = options.libc ? libcReader(options.libc) : denoReader();
  loadCpuUsage();
  return () => {
    let openFds: number | null = null;
    let maxFds: number | null = null;
    try {
      openFds = reader.entries("/proc/self/fd");
      const limit = /^Max open files\s+(\d+|unlimited)/m.exec(reader.text("/proc/self/limits"));
      maxFds = limit === null || limit[1] === "unlimited" ? null : Number(limit[1]);
    } catch {
      // No /proc (another OS), or no permission to read it: the series are left out.
      openFds = null;
      maxFds = null;
    }
    const usage = cpuUsage?.() ?? null;
    return {
      residentBytes: Deno.memoryUsage().rss,
      cpuSeconds: usage === null ? null : (usage.user + usage.system) / 1e6,
      openFds,
      maxFds,
    };
  };
}
