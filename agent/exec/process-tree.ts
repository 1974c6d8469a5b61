import { readdirSync, readFileSync } from 'node:fs';

/** Children of every process, from the ppid field of /proc/<pid>/stat. */
function readChildren(): Map<number, number[]> {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    } catch {
      continue; // it exited while we were reading
    }
    // "pid (comm) state ppid ...": comm may contain spaces and parentheses, so split after the last ')'.
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    const siblings = children.get(ppid);
    if (siblings) siblings.push(pid);
    else children.set(ppid, [pid]);
  }
  return children;
}

/** Every living descendant of `pid` that is still linked to it by parent ids. */
export function findDescendants(pid: number): number[] {
  const children = readChildren();
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

function signal(target: number, name: NodeJS.Signals): void {
  try {
    process.kill(target, name);
  } catch {
    // ESRCH: already gone.
  }
}

/**
 * Kills `pid` (the leader of its own process group), everyone in that group, and its descendants that left
 * the group (setsid, setpgid). Synchronous on purpose: the leader is our child and cannot be reaped while this
 * runs, so the parent links from it stay intact. Processes already re-parented to init cannot be found.
 */
export function killProcessTree(pid: number): void {
  // Freeze first so nothing can fork or move away while the tree is walked.
  signal(-pid, 'SIGSTOP');
  const frozen = new Set<number>([pid]);
  for (let round = 0; round < 5; round++) {
    const fresh = findDescendants(pid).filter((p) => !frozen.has(p));
    if (fresh.length === 0) break;
    for (const p of fresh) {
      signal(p, 'SIGSTOP');
      frozen.add(p);
    }
  }
  signal(-pid, 'SIGKILL');
  for (const p of frozen) signal(p, 'SIGKILL');
}
