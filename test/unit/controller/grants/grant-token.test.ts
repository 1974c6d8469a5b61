import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { readGrant, signGrant, type GrantClaims } from '../../../../controller/grants/grant-token.js';

const KEY = Buffer.from('a-key-of-thirty-two-characters-or-more');
const CLAIMS: GrantClaims = { v: 1, cap: 'file', sid: 's1', path: '/workspace/a.txt', exp: 1_900_000_000_000, jti: 'j'.repeat(22), gen: 'g'.repeat(22) };

const codeOf = (fn: () => unknown): string | undefined => {
  try {
    fn();
    return undefined;
  } catch (error) {
    return (error as { code?: string }).code;
  }
};

describe('grant tokens', () => {
  it('reads back the claims it signed', () => {
    expect(readGrant(KEY, signGrant(KEY, CLAIMS))).toEqual(CLAIMS);
  });

  it('refuses a token changed anywhere, signed with another key, or of another version', () => {
    const token = signGrant(KEY, CLAIMS);
    const [version, payload, mac] = token.split('.') as [string, string, string];
    const otherClaims = Buffer.from(JSON.stringify({ ...CLAIMS, path: '/workspace/b.txt' })).toString('base64url');
    for (const bad of [
      `${version}.${otherClaims}.${mac}`,
      `${version}.${payload}.${mac.slice(0, -3)}AAA`,
      `g2.${payload}.${mac}`,
      `${version}.${payload}`,
      `${token}.x`,
      signGrant(Buffer.from('another-key-of-thirty-two-characters'), CLAIMS),
      '',
      'x'.repeat(10_000),
    ]) {
      expect(codeOf(() => readGrant(KEY, bad)), bad.slice(0, 40)).toBe('GRANT_TAMPERED');
    }
  });

  it('refuses a correctly signed payload that is not claims of this version', () => {
    const payload = `g1.${Buffer.from(JSON.stringify({ ...CLAIMS, cap: 'admin' })).toString('base64url')}`;
    const forged = `${payload}.${createHmac('sha256', KEY).update(payload).digest('base64url')}`;
    expect(codeOf(() => readGrant(KEY, forged))).toBe('GRANT_TAMPERED');
  });
});
