/** Stock nebula in a namespace (certs, config, start): the testbed's bench peer. */
export { nebulaConfig, nebulaCerts, startNebula, nebulaRelaySubject, NEBULA_NET, type NebulaNodeInit } from '../../testbed';
