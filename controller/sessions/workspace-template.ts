import { lstat } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pack } from 'tar-fs';
import { Agent, request } from 'undici';
import { AppError, ErrorCode } from '../../shared/errors.js';
import { AgentRoute } from '../../shared/routes.js';
import { TemplateName } from '../../shared/schemas/session.js';
import { agentOrigin, type AgentEndpoint } from '../proxy/agent-target.js';

const SEED_TIMEOUT_MS = 120_000;

/**
 * The host folder `root/<segments…>` of a template, each segment one name (no `/`, no `..`) and each step a real
 * folder, never a symbolic link; TEMPLATE_NOT_FOUND otherwise.
 */
export async function resolveTemplate(root: string | undefined, segments: string[]): Promise<string> {
  const name = segments.join('/');
  if (!root) throw new AppError('TEMPLATE_NOT_FOUND', `no template ${name}: the runner has no TEMPLATES_DIR`);
  let dir = root;
  for (const segment of segments) {
    if (!TemplateName.safeParse(segment).success) throw new AppError('TEMPLATE_NOT_FOUND', `no template ${name}`);
    dir = join(dir, segment);
    const stats = await lstat(dir).catch(() => undefined);
    if (!stats?.isDirectory()) throw new AppError('TEMPLATE_NOT_FOUND', `no template ${name}`);
  }
  return dir;
}

/**
 * Copies a template folder into a session's workspace: packed here without following any symbolic link (a link
 * travels as a link), extracted by the agent's jailed archive route as the learner, who then owns every file.
 */
export async function seedWorkspace(agent: { endpoint: AgentEndpoint; token: string }, templateDir: string): Promise<void> {
  const { endpoint } = agent;
  const dispatcher = new Agent(endpoint.kind === 'unix' ? { connect: { socketPath: endpoint.socketPath } } : {});
  try {
    // Sockets, FIFOs and devices in the operator's folder are skipped rather than refused by the agent.
    const tar = Readable.from(pack(templateDir, { dereference: false, strict: false }), { objectMode: false });
    const res = await request(`${agentOrigin(endpoint)}${AgentRoute.archive}?path=%2Fworkspace`, {
      method: 'PUT',
      dispatcher,
      headers: { authorization: `Bearer ${agent.token}`, 'content-type': 'application/x-tar' },
      body: tar,
      headersTimeout: SEED_TIMEOUT_MS,
      bodyTimeout: SEED_TIMEOUT_MS,
    });
    const text = await res.body.text();
    if (res.statusCode >= 300) {
      const body = parseError(text);
      throw new AppError(body.code, `the template could not be copied into the workspace: ${body.message}`);
    }
  } finally {
    await dispatcher.close().catch(() => {});
  }
}

function parseError(text: string): { code: ErrorCode; message: string } {
  try {
    const body = JSON.parse(text) as { code?: unknown; message?: unknown };
    const code = ErrorCode.safeParse(body.code);
    return { code: code.success ? code.data : 'AGENT_UNAVAILABLE', message: typeof body.message === 'string' ? body.message : text };
  } catch {
    return { code: 'AGENT_UNAVAILABLE', message: text.slice(0, 200) };
  }
}
