/**
 * A `Deno.Listener` over a listening TCP socket that systemd passed by descriptor: the metrics
 * endpoint under socket activation, where the service has no network of its own to bind in.
 * Deno's own API cannot take a descriptor; node:net can (`server.listen({ fd })`). It costs
 * about 6 MB of memory, so lib/serve.ts loads this module only when such a socket is passed.
 */
import net from "node:net";
import { RuntimeError } from "../errors.ts";

/** The parts of `Deno.Conn` that lib/metrics/metrics_server.ts uses, over a node:net socket. */
class SocketConn {
  #socket: net.Socket;
  #chunks: Uint8Array[] = [];
  #ended = false;
  #error: Error | null = null;
  #wake: (() => void) | null = null;
  readonly remoteAddr: Deno.NetAddr;
  readonly localAddr: Deno.NetAddr;

  constructor(socket: net.Socket) {
    this.#socket = socket;
    this.remoteAddr = {
      transport: "tcp",
      hostname: socket.remoteAddress ?? "",
      port: socket.remotePort ?? 0,
    };
    this.localAddr = {
      transport: "tcp",
      hostname: socket.localAddress ?? "",
      port: socket.localPort ?? 0,
    };
    const wake = () => {
      this.#wake?.();
      this.#wake = null;
    };
    socket.on("data", (chunk: Uint8Array) => {
      this.#chunks.push(chunk);
      socket.pause(); // read() resumes: memory stays bounded by what the reader asks for
      wake();
    });
    socket.on("end", () => {
      this.#ended = true;
      wake();
    });
    socket.on("error", (error: Error) => {
      this.#error = error;
      wake();
    });
    socket.on("close", () => {
      this.#ended = true;
      wake();
    });
  }

  async read(buffer: Uint8Array): Promise<number | null> {
    while (this.#chunks.length === 0) {
      if (this.#error !== null) throw this.#error;
      if (this.#ended) return null;
      this.#socket.resume();
      await new Promise<void>((resolve) => this.#wake = resolve);
    }
    const chunk = this.#chunks[0];
    const n = Math.min(buffer.length, chunk.length);
    buffer.set(chunk.subarray(0, n));
    if (n === chunk.length) this.#chunks.shift();
    else this.#chunks[0] = chunk.subarray(n);
    return n;
  }

  write(bytes: Uint8Array): Promise<number> {
    return new Promise((resolve, reject) => {
      this.#socket.write(bytes, (error) => error ? reject(error) : resolve(bytes.length));
    });
  }

  closeWrite(): Promise<void> {
    return new Promise((resolve) => this.#socket.end(resolve));
  }

  close(): void {
    this.#socket.destroy();
  }
}

/**
 * Listens on the listening socket `fd` (inherited from systemd).
 *
 * @throws {RuntimeError} if it is not a TCP socket; {Error} if node:net cannot listen on it.
 */
export async function listenOnDescriptor(fd: number): Promise<Deno.Listener> {
  const server = net.createServer({ pauseOnConnect: true });
  const waiting: net.Socket[] = [];
  let taker: ((socket: net.Socket | null) => void) | null = null;
  let closed = false;
  server.on("connection", (socket: net.Socket) => {
    if (taker !== null) {
      taker(socket);
      taker = null;
    } else {
      waiting.push(socket);
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen({ fd }, () => {
      server.off("error", reject);
      resolve();
    });
  });
  // A Unix socket listens too, but has no address and port: not what a scraper reaches.
  const address = server.address();
  if (address === null || typeof address !== "object") {
    server.close();
    throw new RuntimeError(
      `Descriptor ${fd} named "metrics" is not a listening TCP socket: not IPv4 or IPv6`,
    );
  }
  const listener = {
    addr: { transport: "tcp", hostname: address.address, port: address.port },
    async accept(): Promise<Deno.Conn> {
      const socket = waiting.shift() ??
        (closed ? null : await new Promise<net.Socket | null>((resolve) => taker = resolve));
      if (socket === null) throw new Deno.errors.BadResource("Listener has been closed");
      return new SocketConn(socket) as unknown as Deno.Conn;
    },
    close(): void {
      if (closed) return;
      closed = true;
      server.close();
      taker?.(null);
      for (const socket of waiting.splice(0)) socket.destroy();
    },
  };
  return listener as unknown as Deno.Listener;
}
