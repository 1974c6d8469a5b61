import type { WebSocket } from 'ws';

/**
 * Pings the peer every `intervalSeconds` and terminates the socket when the previous ping got no pong, so a
 * peer that vanished without closing (laptop lid, dropped network) is noticed within two intervals.
 */
export function keepAlive(socket: WebSocket, intervalSeconds: number): void {
  let alive = true;
  socket.on('pong', () => {
    alive = true;
  });
  const timer = setInterval(() => {
    if (!alive) {
      socket.terminate();
      return;
    }
    alive = false;
    socket.ping();
  }, intervalSeconds * 1000);
  timer.unref();
  socket.once('close', () => clearInterval(timer));
}
