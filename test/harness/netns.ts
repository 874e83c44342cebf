/**
 * Network-namespace topology for root tests: the testbed's (the compiled bench and demo build
 * the same topology), plus what only tests need.
 */
export * from '../../testbed';

/** A per-run test prefix: `base` + 4 random hex chars (e.g. 'itn7' → 'itn7a3f0'). */
export { randomPrefix as testPrefix } from '../../testbed';

/** Why a root-only test is skipped, or undefined when it can run. */
export function rootSkipReason(): string | undefined {
  return process.getuid?.() === 0 ? undefined
    : 'skipped: needs root (network namespaces, veths, nft); run the suite as root to include it';
}
