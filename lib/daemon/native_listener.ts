/**
 * The native listener (Linux): sockets made and served through libc. One epoll set holds every
 * listener; a ready listener is accepted from in a batch until EAGAIN, and each client's address
 * comes from accept4(2) itself, so a client that resets right after the handshake (a connect
 * scan) is logged like any other. A round's connections are held open until their lines are
 * written, then closed together: a client sees its connection close only once its line is in
 * the log (fail2ban may already act), and one close_range(2) closes them all.
 *
 * The loop, top to bottom (`serve`): wait for events (on the main thread for up to SYNC_WAIT_MS,
 * then off it); when the last round found more than one connection, wait COALESCE_WAIT_US so
 * that this round takes the ones arriving together; accept from each ready listener until its
 * queue is empty, sorting failures by errno (`acceptAll`); write the lines and close the
 * connections (`release`); back off after a failure that is not one connection's; give the event
 * loop a turn now and then.
 */
import {
  AF_INET,
  AF_INET6,
  encodeSockaddr,
  EPOLL_CTL_ADD,
  epollEventLayout,
  EPOLLIN,
  ERRNO,
  errnoName,
  F_GETFL,
  F_SETFL,
  IPPROTO_IPV6,
  IPPROTO_TCP,
  IPV6_V6ONLY,
  type Libc,
  O_NONBLOCK,
  OsError,
  SO_ACCEPTCONN,
  SO_DOMAIN,
  SO_PROTOCOL,
  SO_REUSEADDR,
  SO_TYPE,
  SOCK_CLOEXEC,
  SOCK_NONBLOCK,
  SOCK_STREAM,
  SOCKADDR_BYTES,
  SOL_SOCKET,
  SYS_CLOSE_RANGE,
  writeEpollEvent,
} from "../linux/libc.ts";
import { sockaddrAddress, sockaddrFamily, sockaddrPort, sockaddrViews } from "../linux/sockaddr.ts";
import { acceptErrorKind, backOff } from "../accept_error.ts";
import { addressBytes } from "./client_address.ts";
import type { ConnectionSink, ListenerSet } from "./listener_set.ts";

/** Connections that may wait in each listener's accept queue (the kernel caps it at somaxconn). */
export const LISTEN_BACKLOG = 4096;
/**
 * The most connections accepted from one listener before the others get their turn, and the
 * most held open before their lines are written and they are closed.
 */
export const ACCEPT_BATCH = 256;
/**
 * The most connections taken from one listener's queue when stopping: its backlog (which the
 * kernel caps) and more, so a stop ends whatever the arrival rate.
 */
export const DRAIN_LIMIT = 65_536;
/**
 * Rounds of events taken on the main thread before the event loop gets a turn (signals, timers,
 * the metrics endpoint), given with setImmediate: 3 µs, where the hop of an epoll_wait to a worker
 * thread and back costs 30 µs.
 */
const POLLS_BEFORE_YIELD = 16;
/**
 * How long the main thread waits for more connections after a round before it hands the wait
 * to a worker thread, in milliseconds. Under load the next connection comes sooner, and the
 * hand-over (a thread wake-up both ways) cost 17% more CPU per connection than this wait; signals
 * and timers wait at most POLLS_BEFORE_YIELD times this.
 */
const SYNC_WAIT_MS = 1;
/**
 * How long a round waits before it accepts when the last round found more than one connection
 * (and fewer than ACCEPT_BATCH), in microseconds. Connections arriving together are then
 * accepted, written in one write and closed in one call: at 25,000 a second, rounds of a minimal
 * loop grew from 1.4 connections to 6-12 and the daemon's CPU time per connection fell by a
 * fifth to a third (docs/performance.md).
 * A lone connection never waits. The kernel's timer slack (50 µs unless changed) makes the wait
 * about 140 µs; 20 µs (about 100) saved less, 100 (about 190) no more.
 */
export const COALESCE_WAIT_US = 50;
/** The most ready descriptors one epoll_wait returns. */
const MAX_EVENTS = 64;
/** The epoll data that marks the wake-up eventfd (listeners use their index). */
const WAKE = 0xffffffff;
const EFD_CLOEXEC = 0o2000000;
const EPOLL_CLOEXEC = 0o2000000;

const ANY_IPV4 = new Uint8Array(4);
const ANY_IPV6 = new Uint8Array(16);

/** What a listener socket handed over by systemd is. */
export interface AdoptedListener {
  /** Its port. */
  port: number;
  /** `ipv4`, `ipv6` (IPv6-only) or `dual` (an IPv6 socket that also takes IPv4 clients). */
  family: "ipv4" | "ipv6" | "dual";
}

/** Listeners made and served through libc (see the module documentation). */
export class NativeListeners implements ListenerSet {
  /** The kernel sets IPV6_V6ONLY per socket: one `::` socket takes both families. */
  readonly dualStackInOneSocket = true;
  #libc: Libc;
  #fds: number[] = [];
  #ports: number[] = [];
  #sockaddr = new Uint8Array(SOCKADDR_BYTES);
  #views = sockaddrViews(this.#sockaddr);
  /** Connections accepted and not closed yet (see {@linkcode release}). */
  #held = new Int32Array(ACCEPT_BATCH);
  #heldCount = 0;
  /** Connections accepted in this round of `serve`. */
  #roundAccepted = 0;
  /** Whether close_range(2) works here (Linux 5.9 or later, and no seccomp filter refuses it). */
  #closeRange = true;
  #socklen = new Uint32Array(1);
  #socklenBytes = new Uint8Array(this.#socklen.buffer);
  #int = new Int32Array(1);
  #intBytes = new Uint8Array(this.#int.buffer);
  #wake = -1;
  #closing = false;
  #serving = false;
  #closed = false;

  /** Creates an empty set that calls `libc`. */
  constructor(libc: Libc) {
    this.#libc = libc;
  }

  /**
   * Binds a listener on `hostname` (an IP address as text, `::` or `0.0.0.0` for any) and
   * `port` (0: the system picks one); returns the port.
   *
   * @throws {OsError} if the socket cannot be made, bound or listened on.
   */
  bind(hostname: string, port: number, options: { v6only: boolean }): number {
    const { symbols } = this.#libc;
    const ipv6 = hostname.includes(":");
    const fd = this.#check(
      symbols.socket(ipv6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0),
      "socket",
    );
    try {
      this.#setInt(fd, SOL_SOCKET, SO_REUSEADDR, 1);
      // Set either way: net.ipv6.bindv6only must not decide which clients are logged.
      if (ipv6) this.#setInt(fd, IPPROTO_IPV6, IPV6_V6ONLY, options.v6only ? 1 : 0);
      const address = hostname === "::"
        ? ANY_IPV6
        : hostname === "0.0.0.0"
        ? ANY_IPV4
        : addressBytes(hostname);
      const sockaddr = encodeSockaddr(address, port);
      this.#check(symbols.bind(fd, sockaddr, sockaddr.length), "bind");
      this.#check(symbols.listen(fd, LISTEN_BACKLOG), "listen");
      const bound = port === 0 ? this.#localPort(fd) : port;
      this.#fds.push(fd);
      this.#ports.push(bound);
      return bound;
    } catch (error) {
      symbols.close(fd);
      throw error;
    }
  }

  /**
   * Takes over a listening TCP socket that systemd passed (socket activation).
   *
   * @throws {OsError} if `fd` is not a listening TCP socket (`code` ENOTSOCK or EINVAL).
   */
  adopt(fd: number): AdoptedListener {
    const { symbols } = this.#libc;
    const notListening = (what: string) =>
      new OsError(`Descriptor ${fd} is not a listening TCP socket: ${what}`, {
        errno: ERRNO.EINVAL,
      });
    let domain: number;
    try {
      domain = this.#getInt(fd, SOL_SOCKET, SO_DOMAIN);
    } catch (error) {
      if (error instanceof OsError && error.errno === ERRNO.ENOTSOCK) {
        throw notListening("no socket");
      }
      throw error;
    }
    if (domain !== AF_INET && domain !== AF_INET6) throw notListening("not IPv4 or IPv6");
    if (this.#getInt(fd, SOL_SOCKET, SO_TYPE) !== SOCK_STREAM) throw notListening("not a stream");
    if (this.#getInt(fd, SOL_SOCKET, SO_PROTOCOL) !== IPPROTO_TCP) throw notListening("not TCP");
    if (this.#getInt(fd, SOL_SOCKET, SO_ACCEPTCONN) !== 1) throw notListening("not listening");
    const flags = this.#check(symbols.fcntl(fd, F_GETFL, 0), "fcntl");
    this.#check(symbols.fcntl(fd, F_SETFL, flags | O_NONBLOCK), "fcntl");
    const port = this.#localPort(fd);
    const family = domain === AF_INET
      ? "ipv4"
      : this.#getInt(fd, IPPROTO_IPV6, IPV6_V6ONLY) === 1
      ? "ipv6"
      : "dual";
    this.#fds.push(fd);
    this.#ports.push(port);
    return { port, family };
  }

  /** Accepts until {@linkcode close}; then accepts what waits in the queues, and closes. */
  async serve(sink: ConnectionSink): Promise<void> {
    if (this.#closed) return;
    const { symbols } = this.#libc;
    this.#serving = true;
    const epoll = this.#check(symbols.epoll_create1(EPOLL_CLOEXEC), "epoll_create1");
    const layout = epollEventLayout();
    const events = new Uint8Array(layout.size * MAX_EVENTS);
    // The data field of event i, read as a 32-bit word (both layouts keep it aligned).
    const words = new Uint32Array(events.buffer);
    const dataWord = (i: number) => words[(i * layout.size + layout.data) >> 2];
    try {
      this.#wake = this.#check(symbols.eventfd(0, EFD_CLOEXEC), "eventfd");
      const event = new Uint8Array(layout.size);
      const add = (fd: number, data: number) => {
        writeEpollEvent(event, 0, { events: EPOLLIN, data });
        this.#check(symbols.epoll_ctl(epoll, EPOLL_CTL_ADD, fd, event), "epoll_ctl");
      };
      add(this.#wake, WAKE);
      this.#fds.forEach((fd, index) => add(fd, index));
      let rounds = 0;
      let coalesce = false;
      while (!this.#closing) {
        // Wait: on this thread for SYNC_WAIT_MS, then off it (the event loop runs meanwhile).
        // epoll_wait fails only on EINTR here (its errno lives on another thread): wait again.
        let count = symbols.epoll_poll(epoll, events, MAX_EVENTS, SYNC_WAIT_MS);
        if (count <= 0) {
          rounds = 0;
          count = await symbols.epoll_wait(epoll, events, MAX_EVENTS, -1);
        }
        // Busy: let the connections that arrive together join this round.
        if (coalesce) symbols.usleep(COALESCE_WAIT_US);
        // Accept from each ready listener; write the lines, then close the connections.
        let failed = false;
        this.#roundAccepted = 0;
        for (let i = 0; i < count; i++) {
          const data = dataWord(i);
          if (data !== WAKE && !this.#acceptAll(data, sink, ACCEPT_BATCH)) failed = true;
        }
        this.#release(sink);
        coalesce = this.#roundAccepted > 1 && this.#roundAccepted < ACCEPT_BATCH;
        if (this.#closing) break;
        if (failed) {
          rounds = 0;
          await backOff();
        } else if (++rounds === POLLS_BEFORE_YIELD) {
          rounds = 0;
          await new Promise((resolve) => setImmediate(resolve));
        }
      }
      // Stopping: the connections already in the queues were accepted by the kernel, so they
      // are logged before the Stopped line.
      for (let index = 0; index < this.#fds.length; index++) {
        this.#acceptAll(index, sink, DRAIN_LIMIT);
      }
      this.#release(sink);
    } finally {
      this.#release(sink);
      symbols.close(epoll);
      if (this.#wake !== -1) symbols.close(this.#wake);
      this.#closeListeners();
    }
  }

  /** Stops {@linkcode serve} (it drains the queues first); closes at once if not serving. */
  close(): void {
    if (this.#closing) return;
    this.#closing = true;
    if (!this.#serving) {
      this.#closeListeners();
      return;
    }
    const one = new Uint8Array(8);
    one[0] = 1;
    this.#libc.symbols.write(this.#wake, one, 8n);
  }

  /**
   * Accepts up to `limit` connections on listener `index`, until its queue is empty; false if
   * the loop must back off. Failures are sorted by errno (lib/accept_error.ts).
   */
  #acceptAll(index: number, sink: ConnectionSink, limit: number): boolean {
    const { symbols } = this.#libc;
    const listener = this.#fds[index];
    const port = this.#ports[index];
    const sockaddr = this.#sockaddr;
    for (let accepted = 0; accepted < limit;) {
      this.#socklen[0] = SOCKADDR_BYTES;
      const fd = symbols.accept4(listener, sockaddr, this.#socklenBytes, SOCK_CLOEXEC);
      if (fd >= 0) {
        // The hot path: no read, no write to the socket. It is closed once its line is written.
        accepted++;
        this.#roundAccepted++;
        this.#held[this.#heldCount++] = fd;
        const address = sockaddrAddress(this.#views);
        if (address !== null) sink.connection(address, sockaddrPort(sockaddr), port);
        if (this.#heldCount === ACCEPT_BATCH) this.#release(sink);
        continue;
      }
      const code = errnoName(this.#libc.errno());
      switch (acceptErrorKind(code)) {
        case "empty":
          return true;
        case "interrupted":
          continue;
        case "connection":
          sink.acceptFailed({ kind: "connection", code }, port);
          continue;
        case "resource":
          // Descriptors this round holds are given back first; then the accept is tried again.
          if (this.#heldCount > 0) {
            this.#release(sink);
            continue;
          }
          sink.acceptFailed({ kind: "resource", code }, port);
          return false;
        case "other":
          sink.acceptFailed({ kind: "other", code }, port);
          return false;
      }
    }
    return true;
  }

  /** Writes the lines of the connections held open, then closes them. */
  #release(sink: ConnectionSink): void {
    sink.flush();
    const count = this.#heldCount;
    if (count === 0) return;
    this.#heldCount = 0;
    const { symbols } = this.#libc;
    const held = this.#held;
    let low = held[0];
    let high = low;
    for (let i = 1; i < count; i++) {
      const fd = held[i];
      if (fd < low) low = fd;
      else if (fd > high) high = fd;
    }
    // Descriptors held open are ours alone, so when they fill a range, every descriptor in it is
    // one of them: one call closes them all.
    if (this.#closeRange && high - low + 1 === count) {
      if (Number(symbols.syscall(SYS_CLOSE_RANGE, low, high, 0)) === 0) return;
      this.#closeRange = false; // ENOSYS (Linux before 5.9) or a seccomp filter: one by one
    }
    for (let i = 0; i < count; i++) symbols.close(held[i]);
  }

  #closeListeners(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const fd of this.#fds) this.#libc.symbols.close(fd);
  }

  #localPort(fd: number): number {
    const sockaddr = new Uint8Array(SOCKADDR_BYTES);
    const length = new Uint32Array([SOCKADDR_BYTES]);
    this.#check(
      this.#libc.symbols.getsockname(fd, sockaddr, new Uint8Array(length.buffer)),
      "getsockname",
    );
    const family = sockaddrFamily(sockaddr);
    if (family !== AF_INET && family !== AF_INET6) {
      throw new OsError(`Descriptor ${fd} is not an IP socket`, { errno: ERRNO.EINVAL });
    }
    return sockaddrPort(sockaddr);
  }

  #setInt(fd: number, level: number, name: number, value: number): void {
    this.#int[0] = value;
    this.#check(this.#libc.symbols.setsockopt(fd, level, name, this.#intBytes, 4), "setsockopt");
  }

  #getInt(fd: number, level: number, name: number): number {
    const length = new Uint32Array([4]);
    this.#check(
      this.#libc.symbols.getsockopt(fd, level, name, this.#intBytes, new Uint8Array(length.buffer)),
      "getsockopt",
    );
    return this.#int[0];
  }

  /** Returns `result`, or throws the OS error if it is -1. */
  #check(result: number, call: string): number {
    if (result !== -1) return result;
    const errno = this.#libc.errno();
    return throwOsError(call, errno);
  }
}

function throwOsError(call: string, errno: number): never {
  throw new OsError(`${call} failed`, { errno });
}
