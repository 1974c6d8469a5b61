import { readFileSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { setImmediate as nextTurn } from 'node:timers/promises';

// Read this many /proc files between two turns of the event loop (a fork bomb makes thousands).
const READS_PER_TURN = 64;

/**
 * Children of every process, from the ppid field of /proc/<pid>/stat. Read in small synchronous batches with a
 * turn of the event loop between them: a procfs read needs no thread pool round trip (an async readFile takes four,
 * which under a fork bomb cost the agent more than the reads), and the agent keeps answering between batches.
 */
async function readChildren(): Promise<Map<number, number[]>> {
  const children = new Map<number, number[]>();
  const pids = (await readdir('/proc')).map(Number).filter((pid) => Number.isInteger(pid));
  for (let i = 0; i < pids.length; i++) {
    if (i > 0 && i % READS_PER_TURN === 0) await nextTurn();
    const pid = pids[i]!;
    const stat = readStat(pid);
    if (stat === undefined) continue;
    // "pid (comm) state ppid ...": comm may contain spaces and parentheses, so split after the last ')'.
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    const siblings = children.get(ppid);
    if (siblings) siblings.push(pid);
    else children.set(ppid, [pid]);
  }
  return children;
}

function readStat(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined; // it exited while we were reading
  }
}

/** Every living descendant of `pid` that is still linked to it by parent ids. */
export async function findDescendants(pid: number): Promise<number[]> {
  const children = await readChildren();
  const found: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    for (const child of children.get(queue.shift()!) ?? []) {
      found.push(child);
      queue.push(child);
    }
  }
  return found;
}

/** Sends a signal to a process (or, with a negative pid, a process group) that may have exited already. */
export function signal(target: number, name: NodeJS.Signals): void {
  try {
    process.kill(target, name);
  } catch {
    // ESRCH: already gone.
  }
}

/**
 * Kills `pid` (the leader of its own process group), everyone in that group, and its descendants that left
 * the group (setsid, setpgid). The leader is stopped first and stays unreaped while the tree is walked, so the
 * parent links from it stay intact. Processes already re-parented to init cannot be found.
 */
export async function killProcessTree(pid: number): Promise<void> {
  // Freeze first so nothing can fork or move away while the tree is walked.
  signal(-pid, 'SIGSTOP');
  const frozen = new Set<number>([pid]);
  for (let round = 0; round < 5; round++) {
    const fresh = (await findDescendants(pid)).filter((p) => !frozen.has(p));
    if (fresh.length === 0) break;
    for (const p of fresh) {
      signal(p, 'SIGSTOP');
      frozen.add(p);
    }
  }
  signal(-pid, 'SIGKILL');
  for (const p of frozen) signal(p, 'SIGKILL');
}
