/** Human durations for flags and the API: the one parser, common/duration.ts (bare numbers are seconds). */
export { InvalidDurationError, parseDuration } from '../common';
