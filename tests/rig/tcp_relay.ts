/**
 * A TCP relay: every connection accepted on one address is joined to a new connection to
 * another, bytes passed through untouched in both directions (TLS stays end to end). The rig
 * uses it to offer its API server on an IPv6 address and a port of their own.
 *
 * @module
 */

/** Relays connections from `[listenHost]:<port>` to `target`, until closed. */
export class TcpRelay {
  /** The port it accepts connections on (chosen by the kernel). */
  readonly port: number;
  readonly #listener: Deno.TcpListener;
  readonly #open = new Set<Deno.Conn>();

  /** Starts accepting on `listenHost` at once. */
  constructor(listenHost: string, readonly target: { hostname: string; port: number }) {
    this.#listener = Deno.listen({ hostname: listenHost, port: 0 });
    this.port = this.#listener.addr.port;
    this.#accept();
  }

  async #accept(): Promise<void> {
    try {
      for await (const client of this.#listener) this.#join(client);
    } catch {
      // Closed.
    }
  }

  async #join(client: Deno.Conn): Promise<void> {
    this.#open.add(client);
    let server: Deno.Conn | undefined;
    try {
      server = await Deno.connect(this.target);
      this.#open.add(server);
      await Promise.allSettled([
        client.readable.pipeTo(server.writable),
        server.readable.pipeTo(client.writable),
      ]);
    } catch {
      // The target refused, or either side went away: the other side is closed below.
    } finally {
      for (const conn of [client, server]) {
        if (!conn) continue;
        this.#open.delete(conn);
        try {
          conn.close();
        } catch {
          // Already closed by its stream.
        }
      }
    }
  }

  /** Stops accepting and closes every relayed connection. */
  close(): void {
    try {
      this.#listener.close();
    } catch {
      // Already closed.
    }
    for (const conn of this.#open) {
      try {
        conn.close();
      } catch {
        // Already closed.
      }
    }
    this.#open.clear();
  }
}
