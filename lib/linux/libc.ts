/**
 * The C library functions the native listener needs, loaded with Deno's FFI (Linux only).
 *
 * Deno's own accept asks getpeername(2) for the client's address, which fails once the client
 * has reset the connection: connect scanners go unlogged (denoland/deno#8499). Through libc,
 * accept4(2) hands over the address itself. Only these symbols are loaded; the `ffi` permission
 * is revoked once the listeners are bound, so no other library can be loaded afterwards.
 */

/** Linux constants (the same on x86_64 and aarch64). */
export const AF_UNIX = 1;
/** IPv4 address family. */
export const AF_INET = 2;
/** IPv6 address family. */
export const AF_INET6 = 10;
/** Stream (TCP) sockets. */
export const SOCK_STREAM = 1;
/** Datagram sockets (sd_notify). */
export const SOCK_DGRAM = 2;
/** Flag of socket(2) and accept4(2): non-blocking. */
export const SOCK_NONBLOCK = 0o4000;
/** Flag of socket(2) and accept4(2): close on exec. */
export const SOCK_CLOEXEC = 0o2000000;
/** Socket-level options. */
export const SOL_SOCKET = 1;
/** Allows binding a port with connections in TIME-WAIT. */
export const SO_REUSEADDR = 2;
/** The socket's type. */
export const SO_TYPE = 3;
/** Whether the socket listens. */
export const SO_ACCEPTCONN = 30;
/** The socket's protocol. */
export const SO_PROTOCOL = 38;
/** The socket's address family. */
export const SO_DOMAIN = 39;
/** TCP. */
export const IPPROTO_TCP = 6;
/** IPv6-level options. */
export const IPPROTO_IPV6 = 41;
/** Whether an IPv6 socket refuses IPv4 clients. */
export const IPV6_V6ONLY = 26;
/** epoll_ctl(2): add a descriptor. */
export const EPOLL_CTL_ADD = 1;
/** epoll: readable (a listener: a connection waits). */
export const EPOLLIN = 1;
/** fcntl(2) commands and the non-blocking flag. */
export const F_GETFL = 3;
/** fcntl(2): set the file status flags. */
export const F_SETFL = 4;
/** The non-blocking file status flag. */
export const O_NONBLOCK = 0o4000;
/** open(2): read only. */
export const O_RDONLY = 0;
/** open(2): write only. */
export const O_WRONLY = 1;
/** open(2): create the file if it is missing. */
export const O_CREAT = 0o100;
/** open(2) with O_CREAT: fail with EEXIST if the file exists. */
export const O_EXCL = 0o200;
/** open(2): a terminal does not become the controlling one. */
export const O_NOCTTY = 0o400;
/** open(2): every write goes to the end. */
export const O_APPEND = 0o2000;
/** open(2): close on exec. */
export const O_CLOEXEC = 0o2000000;
/** statx(2): the descriptor itself, with an empty path. */
export const AT_EMPTY_PATH = 0x1000;
/** statx(2) mask: the file type and size. */
export const STATX_TYPE_AND_SIZE = 0x1 | 0x200;
/** Size of `struct statx`; `stx_mode` (u16) is at 28, `stx_size` (u64) at 40 on every arch. */
export const STATX_BYTES = 256;
/** The file type bits of a mode, and the types. */
export const S_IFMT = 0o170000;
/** A regular file. */
export const S_IFREG = 0o100000;
/** A directory. */
export const S_IFDIR = 0o040000;
/** Flag of send(2) and sendto(2): fail with EAGAIN rather than wait for room. */
export const MSG_DONTWAIT = 0x40;

/** errno values (asm-generic, the same on x86_64 and aarch64), by name. */
export const ERRNO = {
  EPERM: 1,
  EINTR: 4,
  EBADF: 9,
  EAGAIN: 11,
  ENOMEM: 12,
  EACCES: 13,
  EINVAL: 22,
  ENFILE: 23,
  EMFILE: 24,
  ENOTSOCK: 88,
  EPROTO: 71,
  EOPNOTSUPP: 95,
  EAFNOSUPPORT: 97,
  EADDRINUSE: 98,
  EADDRNOTAVAIL: 99,
  ENETDOWN: 100,
  ENETUNREACH: 101,
  ECONNABORTED: 103,
  ECONNRESET: 104,
  ENOBUFS: 105,
  ETIMEDOUT: 110,
  EHOSTUNREACH: 113,
  ECONNREFUSED: 111,
  ENOENT: 2,
  EIO: 5,
  ENXIO: 6,
  EEXIST: 17,
  ENOTDIR: 20,
  EISDIR: 21,
  EFBIG: 27,
  ENOSPC: 28,
  EROFS: 30,
  EPIPE: 32,
  ELOOP: 40,
  EDQUOT: 122,
} as const;

const ERRNO_NAMES = new Map<number, string>(
  Object.entries(ERRNO).map(([name, value]) => [value, name]),
);

/** The name of an errno value (`EMFILE`), or `errno N` for one not in {@linkcode ERRNO}. */
export function errnoName(errno: number): string {
  return ERRNO_NAMES.get(errno) ?? `errno ${errno}`;
}

/** A failed C library call: `code` is the errno name (as Deno's OS errors have it). */
export class OsError extends Error {
  /** The errno name, e.g. `EADDRINUSE`. */
  readonly code: string;
  /** The errno number. */
  readonly errno: number;

  /** Creates the error of a call that failed with `errno` (-1 when it is not known). */
  constructor(message: string, options: ErrorOptions & { errno?: number } = {}) {
    super(message, options);
    this.name = "OsError";
    this.errno = options.errno ?? -1;
    this.code = errnoName(this.errno);
  }
}

const SYMBOLS = {
  __errno_location: { parameters: [], result: "pointer" },
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
  getsockopt: { parameters: ["i32", "i32", "i32", "buffer", "buffer"], result: "i32" },
  getsockname: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  listen: { parameters: ["i32", "i32"], result: "i32" },
  accept4: { parameters: ["i32", "buffer", "buffer", "i32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  fcntl: { parameters: ["i32", "i32", "i32"], result: "i32" },
  epoll_create1: { parameters: ["i32"], result: "i32" },
  epoll_ctl: { parameters: ["i32", "i32", "i32", "buffer"], result: "i32" },
  // Off the main thread: the event loop (signals, timers, log writes) runs while it waits.
  epoll_wait: { parameters: ["i32", "buffer", "i32", "i32"], result: "i32", nonblocking: true },
  // The same with timeout 0 on the main thread: under load, events are ready at once, and the
  // hop to a worker thread and back would cost more than the accepts.
  epoll_poll: { name: "epoll_wait", parameters: ["i32", "buffer", "i32", "i32"], result: "i32" },
  eventfd: { parameters: ["u32", "i32"], result: "i32" },
  // The native listener's short wait before a busy round (COALESCE_WAIT_US).
  usleep: { parameters: ["u32"], result: "i32" },
  write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  sendto: { parameters: ["i32", "buffer", "usize", "i32", "buffer", "u32"], result: "isize" },
  // Files opened without blocking and checked by descriptor (lib/linux/regular_file.ts).
  open: { parameters: ["buffer", "i32", "u32"], result: "i32" },
  read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  statx: { parameters: ["i32", "buffer", "i32", "u32", "buffer"], result: "i32" },
  // close_range(2) through syscall(2): glibc has the wrapper only since 2.34 (a missing symbol
  // would fail the whole library); the native listener closes a round's connections at once.
  syscall: { parameters: ["i64", "u32", "u32", "u32"], result: "i64" },
  // getdents64(2) through syscall(2) (glibc's wrapper came in 2.30): lib/metrics/process_stats.ts.
  getdents64: { name: "syscall", parameters: ["i64", "i32", "buffer", "u32"], result: "i64" },
} as const satisfies Deno.ForeignLibraryInterface;

/** The loaded functions (see `man 2 <name>`). */
export type LibcSymbols = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

/** The C library: its functions, and errno of the last failed call on this thread. */
export interface Libc {
  /** The functions. */
  readonly symbols: LibcSymbols;
  /** errno now (read right after a call that returned -1). */
  errno(): number;
}

/** The C library's file name on Linux with glibc. */
export const LIBC_PATH = "libc.so.6";

/**
 * Loads the C library (Linux only).
 *
 * @throws {Error} if this is not Linux or the library or a symbol cannot be loaded.
 */
export function openLibc(path: string = LIBC_PATH): Libc {
  if (Deno.build.os !== "linux") throw new Error(`No native listener on ${Deno.build.os}`);
  const library = Deno.dlopen(path, SYMBOLS);
  const symbols = library.symbols;
  // errno is per thread; every call but epoll_wait runs on this one, so its address is fixed.
  // A view of that memory, made now (UnsafePointerView is refused once `ffi` is revoked), reads
  // it without a call: the accept loop reads errno once per round (EAGAIN).
  const location = symbols.__errno_location();
  if (location === null) throw new Error("No errno location");
  const errno = new Int32Array(Deno.UnsafePointerView.getArrayBuffer(location, 4));
  return { symbols, errno: () => errno[0] };
}

/** close_range(2)'s system call number (the same on x86_64 and aarch64). */
export const SYS_CLOSE_RANGE = 436n;
/** getdents64(2)'s system call number on this architecture. */
export const SYS_GETDENTS64: bigint = Deno.build.arch === "x86_64" ? 217n : 61n;

/** Size of `struct sockaddr_in6`, the larger of the two socket address structures. */
export const SOCKADDR_BYTES = 28;

/**
 * The layout of `struct epoll_event`: packed (12 bytes, data at offset 4) on x86_64, natural
 * alignment (16 bytes, data at offset 8) elsewhere (aarch64).
 */
export function epollEventLayout(arch: string = Deno.build.arch): { size: number; data: number } {
  return arch === "x86_64" ? { size: 12, data: 4 } : { size: 16, data: 8 };
}

/** Writes an epoll_event for `events` with `data` (a listener's index) into `buffer` at `index`. */
export function writeEpollEvent(
  buffer: Uint8Array,
  index: number,
  { events, data, arch }: { events: number; data: number; arch?: string },
): void {
  const layout = epollEventLayout(arch);
  const view = new DataView(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  const offset = index * layout.size;
  view.setUint32(offset, events, true);
  view.setUint32(offset + layout.data, data, true);
  view.setUint32(offset + layout.data + 4, 0, true);
}

/** Reads the events and data (low 32 bits) of the epoll_event at `index` in `buffer`. */
export function readEpollEvent(
  buffer: Uint8Array,
  index: number,
  arch?: string,
): { events: number; data: number } {
  const layout = epollEventLayout(arch);
  const view = new DataView(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  const offset = index * layout.size;
  return { events: view.getUint32(offset, true), data: view.getUint32(offset + layout.data, true) };
}

/**
 * Encodes a socket address for bind(2): `address` is 4 bytes (IPv4) or 16 (IPv6); the family
 * is host order (little-endian on every Linux target), the port network order.
 */
export function encodeSockaddr(address: Uint8Array, port: number): Uint8Array {
  const ipv6 = address.length === 16;
  const buffer = new Uint8Array(ipv6 ? SOCKADDR_BYTES : 16);
  const view = new DataView(buffer.buffer);
  view.setUint16(0, ipv6 ? AF_INET6 : AF_INET, true);
  view.setUint16(2, port, false);
  buffer.set(address, ipv6 ? 8 : 4);
  return buffer;
}

/**
 * Sends datagrams to Unix sockets (sd_notify(3)) through one socket of its own, made at once so
 * that sending needs no new descriptor or permission later. A send never blocks.
 */
export function unixDatagramSender(
  libc: Libc,
): { sendDatagram(address: Uint8Array, message: Uint8Array): void } {
  const { symbols } = libc;
  // Non-blocking: a manager that does not read must not stop the event loop (sendto waits for
  // room in the receiver's queue otherwise); a full queue fails with EAGAIN.
  const fd = symbols.socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd === -1) throw new OsError("Cannot make a notification socket", { errno: libc.errno() });
  return {
    sendDatagram(address, message) {
      const length = BigInt(message.length);
      const sent = symbols.sendto(fd, message, length, MSG_DONTWAIT, address, address.length);
      if (Number(sent) === -1) {
        throw new OsError("Cannot notify the service manager", { errno: libc.errno() });
      }
    },
  };
}
