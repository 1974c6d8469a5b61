import type { ServerResponse } from 'node:http';
import type { FastifyPluginAsync } from 'fastify';
import { AppError } from '../../shared/errors.js';
import { AgentRoute } from '../../shared/routes.js';
import type { WatchFrame } from '../../shared/schemas/watch.js';
import type { RouteDeps } from '../app.js';
import { keepAlive } from '../http/keepalive.js';
import { WorkspaceWatcher } from './workspace-watcher.js';

// A subscriber this far behind is dropped rather than buffered without end; it can reconnect and rescan.
const MAX_BUFFERED_BYTES = 4 * 1024 * 1024;
const WS_TRY_AGAIN_LATER = 1013;

export const watchRoutes: FastifyPluginAsync<RouteDeps> = async (app, { config }) => {
  const watcher = new WorkspaceWatcher(config.workspace, app.log);
  const eventStreams = new Set<ServerResponse>();
  // Hijacked SSE responses would keep the server from closing.
  app.addHook('preClose', async () => {
    for (const stream of eventStreams) stream.end();
  });
  app.addHook('onClose', async () => watcher.close());

  app.route({
    method: 'GET',
    url: AgentRoute.watchWs,
    handler: async () => {
      throw new AppError('UPGRADE_REQUIRED', `${AgentRoute.watchWs} is a WebSocket: send an Upgrade request (or use ${AgentRoute.watchSse})`);
    },
    wsHandler: (socket) => {
      const unsubscribe = watcher.subscribe((frame) => {
        if (socket.bufferedAmount > MAX_BUFFERED_BYTES) socket.close(WS_TRY_AGAIN_LATER, 'too far behind');
        else socket.send(JSON.stringify(frame));
      });
      socket.once('close', unsubscribe);
      keepAlive(socket, config.keepaliveSeconds);
    },
  });

  app.get(AgentRoute.watchSse, (_request, reply) => {
    reply.hijack();
    const stream = reply.raw;
    stream.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
      // Proxies must pass events on as they come.
      'x-accel-buffering': 'no',
    });
    stream.flushHeaders();
    eventStreams.add(stream);
    const send = (frame: WatchFrame): void => {
      if (stream.writableLength > MAX_BUFFERED_BYTES) stream.destroy();
      else stream.write(`data: ${JSON.stringify(frame)}\n\n`);
    };
    const unsubscribe = watcher.subscribe(send);
    const heartbeat = setInterval(() => stream.write(': keepalive\n\n'), config.keepaliveSeconds * 1000);
    heartbeat.unref();
    stream.once('close', () => {
      clearInterval(heartbeat);
      unsubscribe();
      eventStreams.delete(stream);
    });
  });
};
