/** Stock wireguard-go in a namespace, for interop tests: the testbed's bench peer. */
export {
  startWireguardGo, wgGenKey, wgPubKey, wgGenPsk, WG_RUN_DIR,
  type NsRunner, type WgPeerSpec, type WireguardGoInit, type WireguardGo, type WgPeerState,
} from '../../testbed';
