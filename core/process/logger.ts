import pino, { type DestinationStream, type Logger, type LoggerOptions } from 'pino';

// Query parameters that carry a credential (a terminal ticket, a signed link's token or signature).
const SECRET_PARAM = /^(ticket|token|access_token|signature|sig)$/i;

/** A URL as it may be logged: the values of credential-bearing query parameters replaced. */
export function redactUrl(url: string): string {
  const query = url.indexOf('?');
  if (query < 0) return url;
  const params = url
    .slice(query + 1)
    .split('&')
    .map((param) => {
      const name = param.split('=', 1)[0]!;
      return SECRET_PARAM.test(decodeName(name)) ? `${name}=[REDACTED]` : param;
    });
  return `${url.slice(0, query)}?${params.join('&')}`;
}

function decodeName(name: string): string {
  try {
    return decodeURIComponent(name.replace(/\+/g, ' '));
  } catch {
    return name;
  }
}

// What Fastify logs of a request, as its own serializer does, but with the URL redacted.
interface LoggedRequest {
  method?: string;
  url?: string;
  host?: string;
  ip?: string;
  socket?: { remotePort?: number };
}

/**
 * The process's pino logger (to stdout by default): no bearer token and no ticket in a URL ever reaches the log.
 * Stdout is written synchronously, as Node writes a pipe on Linux: pino's asynchronous writer retries a busy pipe
 * later, and its flush at exit then puts the last lines (the reason for closing) out of order.
 */
export function createLogger(level: string, destination?: DestinationStream): Logger {
  const options: LoggerOptions = {
    level,
    redact: ['req.headers.authorization', 'req.headers.cookie'],
    serializers: {
      req: (req: LoggedRequest) => ({
        method: req.method,
        url: req.url === undefined ? undefined : redactUrl(req.url),
        host: req.host,
        remoteAddress: req.ip,
        remotePort: req.socket?.remotePort,
      }),
    },
  };
  return pino(options, destination ?? pino.destination({ dest: 1, sync: true }));
}
