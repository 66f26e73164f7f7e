// A TCP relay that can go silent the way a NAT, conntrack or cloud load-balancer drop does: the connections
// open at the freeze stop moving bytes in both directions, with no FIN and no RST, while new connections still
// go through. Stands in for the network between the operator and the API server (loopback only).
import { createConnection, createServer, type Server, type Socket } from 'node:net';

export interface Relay {
  /** host:port to dial instead of the target. */
  address: string;
  /** Connections accepted so far. */
  accepted(): number;
  /** Every connection open now stops moving bytes (and stays open); new ones are relayed as before. */
  freeze(): number;
  close(): Promise<void>;
}

export async function startRelay(target: { host: string; port: number }): Promise<Relay> {
  const pairs = new Set<{ client: Socket; upstream: Socket }>();
  const frozen: Socket[] = [];
  let accepted = 0;
  const server: Server = createServer((client) => {
    accepted++;
    const upstream = createConnection(target);
    const pair = { client, upstream };
    pairs.add(pair);
    client.pipe(upstream);
    upstream.pipe(client);
    const end = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    address: `127.0.0.1:${port}`,
    accepted: () => accepted,
    freeze: () => {
      const n = pairs.size;
      for (const { client, upstream } of pairs) {
        client.unpipe(upstream);
        upstream.unpipe(client);
        client.pause();
        upstream.pause();
        frozen.push(client, upstream);
      }
      pairs.clear();
      return n;
    },
    close: async () => {
      for (const s of frozen) s.destroy();
      for (const { client, upstream } of pairs) {
        client.destroy();
        upstream.destroy();
      }
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
