import { createHmac, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import { AppError } from '../../shared/errors.js';

// The token's version, signed with the claims: a later format can never be read as this one.
const VERSION = 'g1';
const MAX_TOKEN_LENGTH = 8192;
const MAC_BYTES = 32;

/** What a token can be: the three grants, and the cookie a preview sign-in sets on its origin. */
export const TokenKind = z.enum(['terminal', 'preview', 'preview_cookie', 'file']);
export type TokenKind = z.infer<typeof TokenKind>;

/** The signed claims; `cap` names the capability, so a token minted for one never passes for another. */
export const GrantClaims = z.strictObject({
  v: z.literal(1),
  cap: TokenKind,
  sid: z.string().max(64),
  port: z.number().int().min(1).max(65_535).optional(),
  path: z.string().max(4096).optional(),
  tid: z.string().max(64).optional(),
  /** Expiry, milliseconds since the epoch; always present. */
  exp: z.number().int().positive(),
  /** One-time id: a terminal ticket and a preview sign-in are refused once this id was used. */
  jti: z.string().regex(/^[A-Za-z0-9_-]{16,64}$/),
  /** The session's grant generation when minted: revocation (or a new session of the same id) changes it. */
  gen: z.string().regex(/^[A-Za-z0-9_-]{16,64}$/),
});
export type GrantClaims = z.infer<typeof GrantClaims>;

/** `g1.<claims, base64url JSON>.<HMAC-SHA256 of both, base64url>`. */
export function signGrant(key: Buffer, claims: GrantClaims): string {
  const payload = `${VERSION}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}`;
  return `${payload}.${mac(key, payload).toString('base64url')}`;
}

/** The claims of a token this key signed, checked in constant time; anything else is GRANT_TAMPERED. */
export function readGrant(key: Buffer, token: string): GrantClaims {
  const tampered = () => new AppError('GRANT_TAMPERED', 'the grant is not one this runner signed');
  if (token.length > MAX_TOKEN_LENGTH) throw tampered();
  const parts = token.split('.');
  if (parts.length !== 3 || parts[0] !== VERSION) throw tampered();
  const payload = `${parts[0]}.${parts[1]}`;
  const given = Buffer.from(parts[2]!, 'base64url');
  const expected = mac(key, payload);
  if (given.length !== MAC_BYTES || !timingSafeEqual(given, expected)) throw tampered();
  try {
    return GrantClaims.parse(JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8')));
  } catch {
    // Signed by this key but not claims this version knows: still not a grant.
    throw tampered();
  }
}

function mac(key: Buffer, payload: string): Buffer {
  return createHmac('sha256', key).update(payload).digest();
}
