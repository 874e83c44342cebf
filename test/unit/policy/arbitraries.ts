/** fast-check generators for policies and tag sets over a small alphabet, so rules collide. */
import fc from 'fast-check';
import type { Policy, PortSpec, Rule, Selector } from '../../../policy';

export const TAGS = ['a', 'b', 'c', 'd', 'x.y'];

export const arbSelector = (): fc.Arbitrary<Selector> => fc.oneof(
  { weight: 1, arbitrary: fc.constant<Selector>({ kind: 'any' }) },
  { weight: 6, arbitrary: fc.constantFrom(...TAGS).map((tag): Selector => ({ kind: 'tag', tag })) },
);

/** Ports cluster near a few values so generated flows hit rule edges. */
export const arbPort = (): fc.Arbitrary<number> => fc.oneof(
  fc.constantFrom(1, 21, 22, 23, 53, 80, 443, 8000, 9000, 65535),
  fc.integer({ min: 1, max: 65535 }),
);

export const arbPortSpec = (): fc.Arbitrary<PortSpec> => fc.oneof(
  { weight: 1, arbitrary: fc.constant<PortSpec>({ proto: 'any' }) },
  { weight: 2, arbitrary: fc.constant<PortSpec>({ proto: 'icmp' }) },
  {
    weight: 8,
    arbitrary: fc.tuple(fc.constantFrom('tcp' as const, 'udp' as const), arbPort(), arbPort(), fc.boolean())
      .map(([proto, a, b, single]): PortSpec => (single ? { proto, first: a, last: a } : { proto, first: Math.min(a, b), last: Math.max(a, b) })),
  },
);

export const arbRule = (): fc.Arbitrary<Rule> => fc.record({
  from: fc.array(arbSelector(), { minLength: 1, maxLength: 3 }),
  to: fc.array(arbSelector(), { minLength: 1, maxLength: 3 }),
  ports: fc.array(arbPortSpec(), { minLength: 1, maxLength: 4 }),
});

export const arbPolicy = (maxRules = 6): fc.Arbitrary<Policy> =>
  fc.array(arbRule(), { minLength: 1, maxLength: maxRules }).map((rules) => ({ rules }));

/** A member's tags: a few from the alphabet plus, sometimes, one the policy never names. */
export const arbTags = (): fc.Arbitrary<string[]> =>
  fc.tuple(fc.subarray(TAGS), fc.option(fc.constant('unrelated'))).map(([ts, extra]) => (extra ? [...ts, extra] : ts));
