/**
 * Whether this controller runs the jobs only one controller may run at a time: the expiry sweep's removals and the
 * warm pool. A lone controller always does (Docker); replicas in a cluster take turns by a Lease.
 */
export interface Leadership {
  isLeader(): boolean;
  /** Starts taking part; `onChange` hears every change of isLeader(). */
  start(onChange: (leader: boolean) => void): Promise<void>;
  /** Stops taking part, handing the lead over at once if held. */
  stop(): Promise<void>;
}

/** The one controller on a host: always the leader. */
export const soleLeader: Leadership = {
  isLeader: () => true,
  start: async () => {},
  stop: async () => {},
};
