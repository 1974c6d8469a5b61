import type { FastifyBaseLogger } from 'fastify';
import type { SessionManager } from './session-manager.js';

/**
 * Sweeps every `intervalSeconds`: expired sessions are removed, and Docker drift (vanished containers, orphaned
 * volumes and folders) is cleaned up. Returns a function that stops it. Sweeps never overlap.
 */
export function startExpiry(manager: SessionManager, intervalSeconds: number, log: FastifyBaseLogger): () => void {
  let sweeping = false;
  const timer = setInterval(() => {
    if (sweeping) return;
    sweeping = true;
    manager
      .sweep()
      .catch((err: unknown) => log.warn({ err }, 'session sweep failed; retrying at the next interval'))
      .finally(() => {
        sweeping = false;
      });
  }, intervalSeconds * 1000);
  // Sessions live in Docker, not in this process: the timer must not keep it alive.
  timer.unref();
  return () => clearInterval(timer);
}
