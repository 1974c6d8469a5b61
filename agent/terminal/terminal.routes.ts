import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { AppError } from '../../shared/errors.js';
import { AgentRoute } from '../../shared/routes.js';
import {
  TerminalCloseCode,
  TerminalList,
  TerminalInfo,
  TerminalParams,
  TerminalResizeBody,
  TerminalWsQuery,
} from '../../shared/schemas/terminal.js';
import type { RouteDeps } from '../app.js';
import { toAgentError } from '../http/file-errors.js';
import { keepAlive } from '../http/keepalive.js';

// A WebSocket close reason is at most 123 bytes.
const MAX_REASON_BYTES = 123;

export const terminalRoutes: FastifyPluginAsync<RouteDeps> = async (fastify, { terminals, config }) => {
  const app = fastify.withTypeProvider<ZodTypeProvider>();
  // The id a terminal WebSocket will use, decided before the upgrade so the 101 response can name it.
  const upgradeIds = new WeakMap<IncomingMessage, string>();
  app.websocketServer.on('headers', (headers: string[], request: IncomingMessage) => {
    const id = upgradeIds.get(request);
    if (id) headers.push(`X-Terminal-Id: ${id}`);
  });

  app.route({
    method: 'GET',
    url: AgentRoute.terminalWs,
    schema: { querystring: TerminalWsQuery },
    preHandler: async (request) => {
      upgradeIds.set(request.raw, request.query.id ?? randomUUID());
    },
    handler: async () => {
      throw new AppError('UPGRADE_REQUIRED', `${AgentRoute.terminalWs} is a WebSocket: send an Upgrade request`);
    },
    wsHandler: (socket, request) => {
      const id = upgradeIds.get(request.raw) ?? randomUUID();
      try {
        terminals.open({ ...request.query, id }).attach(socket);
      } catch (error) {
        const appError = toAgentError(error);
        if (appError.code === 'INTERNAL') request.log.error({ err: error }, 'terminal failed to start');
        const code = appError.code === 'TOO_MANY_TERMINALS' ? TerminalCloseCode.tooManyTerminals : TerminalCloseCode.startFailed;
        socket.close(code, closeReason(`${appError.code}: ${appError.message}`));
        return;
      }
      keepAlive(socket, config.keepaliveSeconds);
    },
  });

  app.get(AgentRoute.terminals, { schema: { response: { 200: TerminalList } } }, async () => ({
    terminals: terminals.list(),
  }));

  app.post(
    AgentRoute.terminalResize,
    { schema: { params: TerminalParams, body: TerminalResizeBody, response: { 200: TerminalInfo } } },
    async (request) => {
      const terminal = terminals.get(request.params.terminal_id);
      terminal.resize(request.body.cols, request.body.rows);
      return terminal.info();
    },
  );

  app.delete(AgentRoute.terminal, { schema: { params: TerminalParams } }, async (request, reply) => {
    await terminals.kill(request.params.terminal_id);
    return reply.status(204).send();
  });
};

function closeReason(text: string): string {
  let reason = text;
  while (Buffer.byteLength(reason) > MAX_REASON_BYTES) reason = `${reason.slice(0, -4)}...`;
  return reason;
}
