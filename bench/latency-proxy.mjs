// A TCP proxy on loopback that delays the connect and every chunk by ONE_WAY ms each way: a network with a round
// trip of 2 × ONE_WAY ms in front of the anchors' nginx (this VM has no netem), so the request count shows.
//   node bench/latency-proxy.mjs LISTEN_PORT UPSTREAM_PORT ONE_WAY_MS
// Timers of one delay fire in order, so each direction's bytes keep theirs.
import net from 'node:net';

const [listenPort, upstreamPort, oneWay] = process.argv.slice(2).map(Number);
if (!listenPort || !upstreamPort || Number.isNaN(oneWay)) {
  console.error('usage: node bench/latency-proxy.mjs LISTEN_PORT UPSTREAM_PORT ONE_WAY_MS');
  process.exit(2);
}
const relay = (from, to) => {
  from.on('data', (d) => setTimeout(() => to.write(d), oneWay));
  from.on('end', () => setTimeout(() => to.end(), oneWay));
  from.on('error', () => to.destroy());
};
net
  .createServer((client) => {
    client.pause();
    // The handshake's round trip.
    setTimeout(() => {
      const upstream = net.connect(upstreamPort, '127.0.0.1', () => client.resume());
      relay(client, upstream);
      relay(upstream, client);
    }, oneWay * 2);
  })
  .listen(listenPort, '127.0.0.1');
