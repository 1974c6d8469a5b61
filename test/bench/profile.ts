/** How much each figure measures: the full run (about 10 minutes) or `--quick` (a smoke test of a minute or two). */
export interface Profile {
  name: 'full' | 'quick';
  /** Untimed rounds of every kind of request before any figure, so V8 has optimized the hot paths of both servers. */
  warmupRounds: number;
  /** Cold creates through the controller and `docker run` baselines, each. */
  createRounds: number;
  execRounds: number;
  listingRounds: number;
  keystrokes: number;
  /** Write+read rounds per method: 1 MiB, 50 MiB. */
  smallFileRounds: number;
  largeFileRounds: number;
  buildRounds: number;
  /** Sessions alive for the memory figures and the concurrent load. */
  sessions: number;
  /** How long new sessions sit idle before `docker stats` (their daemons finish starting up). */
  idleSettleMs: number;
  /** The exec loop through the controller; the same loop direct to the agents runs half as long. */
  loadMs: number;
  warmPoolSize: number;
  warmRounds: number;
  /** Pairs of `GET /sessions`, usage expired then cached, over the fleet. */
  usageRounds: number;
}

export const FULL: Profile = {
  name: 'full',
  warmupRounds: 600,
  createRounds: 8,
  execRounds: 150,
  listingRounds: 1000,
  keystrokes: 400,
  // A 1 MiB round trip is ~40 ms with a long tail on a shared machine: enough samples for a steady median.
  smallFileRounds: 40,
  // One 50 MiB round on a shared machine runs 0.4–1.2× the byte pipe's in the same round: three gave medians from
  // 0.64× to 0.90× between runs. The note shows the rounds' spread.
  largeFileRounds: 10,
  buildRounds: 4,
  sessions: 20,
  idleSettleMs: 20_000,
  loadMs: 30_000,
  warmPoolSize: 3,
  warmRounds: 8,
  usageRounds: 20,
};

export const QUICK: Profile = {
  name: 'quick',
  warmupRounds: 100,
  createRounds: 2,
  execRounds: 30,
  listingRounds: 100,
  keystrokes: 40,
  smallFileRounds: 3,
  largeFileRounds: 3,
  buildRounds: 1,
  sessions: 3,
  idleSettleMs: 5_000,
  loadMs: 8_000,
  warmPoolSize: 2,
  warmRounds: 2,
  usageRounds: 5,
};
