/**
 * Browsers cannot set `Authorization` on a WebSocket, so the console offers its token as a subprotocol:
 * `Sec-WebSocket-Protocol: runner.v1, runner.bearer.<base64url(token)>`. The server answers with `runner.v1`, never
 * echoing the token; the controller accepts the token this way only from a page of its own origin.
 */
export const WS_PROTOCOL = 'runner.v1';
const BEARER_PREFIX = 'runner.bearer.';

/** The subprotocols a browser offers to carry `token`. */
export function bearerProtocols(token: string): string[] {
  const bytes = new TextEncoder().encode(token);
  const base64 = btoa(String.fromCharCode(...bytes));
  return [WS_PROTOCOL, `${BEARER_PREFIX}${base64.replaceAll('+', '-').replaceAll('/', '_').replace(/=+$/, '')}`];
}

/** Whether a subprotocol carries a token (never to be echoed or passed on). */
export function isBearerProtocol(protocol: string): boolean {
  return protocol.startsWith(BEARER_PREFIX);
}

/** The token carried in a `Sec-WebSocket-Protocol` header, if any. */
export function tokenOfProtocols(header: string | undefined): string | undefined {
  const offered = (header ?? '').split(',').map((protocol) => protocol.trim());
  const carrier = offered.find(isBearerProtocol);
  if (!carrier) return undefined;
  try {
    const binary = atob(carrier.slice(BEARER_PREFIX.length).replaceAll('-', '+').replaceAll('_', '/'));
    return new TextDecoder().decode(Uint8Array.from(binary, (c) => c.charCodeAt(0)));
  } catch {
    return undefined;
  }
}
