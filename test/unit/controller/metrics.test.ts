import { describe, expect, it } from 'vitest';
import { ControllerMetrics, type SessionUsageRow } from '../../../controller/metrics.js';

const counts = { activeSessions: () => 0, pool: () => ({ members: 0, ready: 0 }), starts: () => ({ running: 0, queued: 0 }) };

function usageLines(text: string): string[] {
  return text.split('\n').filter((line) => line.startsWith('runner_session_') && line.includes('session_id='));
}

describe('session usage gauges', () => {
  it('reports each figure labelled by session id, leaves unknown ones out, and drops sessions that are gone', async () => {
    let rows: SessionUsageRow[] = [
      {
        sessionId: 'lab1',
        usage: { memory_bytes: 1000, memory_limit_bytes: 2000, cpu_seconds: 1.5, pids: 7, disk_bytes: null, measured_at: '2026-01-01T00:00:00.000Z' },
      },
      { sessionId: 'lab2', usage: null },
    ];
    const metrics = new ControllerMetrics({ ...counts, sessionUsage: async () => rows });
    expect(usageLines(await metrics.registry.metrics())).toEqual([
      'runner_session_memory_bytes{session_id="lab1"} 1000',
      'runner_session_memory_limit_bytes{session_id="lab1"} 2000',
      'runner_session_cpu_seconds{session_id="lab1"} 1.5',
      'runner_session_pids{session_id="lab1"} 7',
    ]);
    rows = [];
    expect(usageLines(await metrics.registry.metrics())).toEqual([]);
  });

  it('has no usage gauges when the runtime does not measure usage', async () => {
    const metrics = new ControllerMetrics(counts);
    expect(await metrics.registry.metrics()).not.toContain('runner_session_memory_bytes');
  });
});
