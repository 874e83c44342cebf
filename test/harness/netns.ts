/**
 * Network-namespace topology for root tests. The implementation lives in bench/topology.ts
 * because the compiled bench and demo need it too (they run without tsx); this is the test-side
 * import surface.
 */
export * from '../../bench/topology';

/** A per-run test prefix: `base` + 4 random hex chars (e.g. 'itn7' → 'itn7a3f0'). */
export { randomPrefix as testPrefix } from '../../bench/topology';
