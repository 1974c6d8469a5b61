import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

// In the controller's state folder beside the sessions' folders; a `.` keeps it out of the session id space.
const KEY_FILE = 'grants.key';

/**
 * The key that signs grants: RUNNER_SIGNING_KEY when set, otherwise one generated at the first start and kept
 * root-only in the state folder, so grants stay valid across controller restarts.
 */
export async function loadSigningKey(configured: string | undefined, stateDir: string): Promise<Buffer> {
  if (configured) return Buffer.from(configured, 'utf8');
  const file = join(stateDir, KEY_FILE);
  await mkdir(stateDir, { recursive: true, mode: 0o711 });
  try {
    await writeFile(file, randomBytes(32).toString('base64url'), { mode: 0o600, flag: 'wx' });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  }
  // A key another tool left readable is made root-only again.
  await chmod(file, 0o600);
  const key = (await readFile(file, 'utf8')).trim();
  if (key.length < 32) throw new Error(`${file} holds no usable signing key; remove it to have a new one made`);
  return Buffer.from(key, 'utf8');
}
