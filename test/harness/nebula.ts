/** Stock nebula in a namespace (certs, config, start): re-exported from bench/peers/nebula.ts. */
export * from '../../bench/peers/nebula';
