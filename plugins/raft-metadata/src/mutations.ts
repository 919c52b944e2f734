/**
 * Switches that put back known defects, for the simulator's mutation check only (`npm run sim --
 * --sabotage NAME`, and its test): with each one set, the seeded simulation of the production stack
 * must fail, which shows it can see that kind of bug. Nothing in a node sets them. Each is read at
 * the one place whose fix it undoes.
 */
export const mutations = {
  /**
   * LevelStorage.createSnapshot writes the snapshot without the commit index, and opening a log
   * does not raise a commit index that is behind its snapshot (issue 13, defect 1).
   */
  commitBehindSnapshot: false,
  /** A lone voter sends its App and Heartbeat messages before its fsync (issue 13, defect 2). */
  lonelyEarlySend: false,
  /** The transport reports the Props of a write that failed after its bytes left as dropped (defect 3). */
  inFlightReportedDropped: false
}

export type Mutation = keyof typeof mutations
