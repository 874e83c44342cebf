/**
 * Network-namespace topology for root tests: the testbed's (the compiled bench and demo build
 * the same topology), plus what only tests need.
 */
export * from '../../testbed';

/** A per-run test prefix: `base` + 4 random hex chars (e.g. 'itn7' → 'itn7a3f0'). */
export { randomPrefix as testPrefix } from '../../testbed';
