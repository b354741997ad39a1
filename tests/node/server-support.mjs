// A request handler on a loopback HTTP server, for the tests of the Node endpoints (not a test file itself).
import http from 'node:http';

/** Serves `handler` on 127.0.0.1, on a free port: `{ origin, close() }` (close ends open connections too). */
export async function listen(handler) {
  const server = http.createServer(handler);
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    origin: `http://127.0.0.1:${server.address().port}`,
    close: () => new Promise((resolve) => {
      server.close(resolve);
      server.closeAllConnections();
    }),
  };
}
