import type { IncomingMessage } from 'node:http';

/** Where every request of a preview origin is routed: nothing else of the controller is reachable from one. */
export const PREVIEW_ROUTE_PREFIX = '/__runner/preview';

/** A request on a preview origin: the one port of the one session its Host names, and the URL as the browser sent it. */
export interface PreviewTarget {
  sessionId: string;
  port: number;
  /** Path and query exactly as the client spelled them. */
  url: string;
}

const TARGET = Symbol('runner.previewTarget');
type Marked = IncomingMessage & { [TARGET]?: PreviewTarget | null };

// `{port}-{session}`: a port without leading zeros (one origin per port), then a session id.
const LABEL = /^([1-9]\d{0,4})-([a-z0-9][a-z0-9_-]{0,47})$/;

/**
 * Fastify's rewriteUrl: a request whose Host is PREVIEW_DOMAIN or below it goes to the preview routes, whatever its
 * path, marked with its target (null when the name is no `{port}-{session}` of the domain). Other requests are
 * left as they are.
 */
export function previewRewriter(domain: string): (req: IncomingMessage) => string {
  return (req) => {
    const url = req.url ?? '/';
    const host = hostName(req.headers.host);
    if (host === undefined || (host !== domain && !host.endsWith(`.${domain}`))) return url;
    const match = LABEL.exec(host.slice(0, -(domain.length + 1)));
    const port = Number(match?.[1]);
    (req as Marked)[TARGET] = match && port <= 65_535 ? { sessionId: match[2]!, port, url: url.startsWith('/') ? url : '/' } : null;
    return `${PREVIEW_ROUTE_PREFIX}${url.startsWith('/') ? url : '/'}`;
  };
}

/** The preview target of a request: undefined when it is not on a preview origin, null when its name is unknown. */
export function previewTargetOf(req: IncomingMessage): PreviewTarget | null | undefined {
  return (req as Marked)[TARGET];
}

/** The Host header's name, lowercased, without its port or a trailing dot. */
function hostName(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const name = header.toLowerCase().replace(/:\d*$/, '');
  return name.endsWith('.') ? name.slice(0, -1) : name;
}
