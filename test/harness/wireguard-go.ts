/** Stock wireguard-go in a namespace, for interop tests: re-exported from bench/peers/wireguard-go.ts. */
export * from '../../bench/peers/wireguard-go';
