/** Process helpers for tests: re-exported from bench/procs.ts (compiled with the bench and demo). */
export * from '../../bench/procs';
