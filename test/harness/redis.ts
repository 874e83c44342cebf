/** A private redis-server for tests. The implementation is in bench/ because the compiled
 *  benchmarks start one too (they run without tsx and may not import from test/). */
export * from '../../bench/redis-server';
