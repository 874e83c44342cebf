/**
 * isthmus as a library: what an application embeds, as opposed to the daemons it runs.
 *
 * @example Resolve an original IP before dialing it (the mapper's SDK):
 * ```ts
 * import { Mapper } from 'isthmus';
 * const mapper = new Mapper({ url: 'http://127.0.0.1:7070' });
 * const { virtualIp } = await mapper.resolve('10.91.1.2');
 * net.connect(8080, virtualIp);
 * ```
 *
 * @example Administer a coordinator:
 * ```ts
 * import { CoordinatorClient } from 'isthmus';
 * const c = new CoordinatorClient({ url: 'https://10.90.0.1:8080', adminToken, ca: readFileSync('coordinator-ca.pem') });
 * const { token } = await c.createToken({ uses: 10, ttl: '1h', tags: ['agent'] });
 * ```
 */
export { Mapper, UnknownOriginalIpError, InvalidIpError, MapperApiError, type MapperOptions, type MapResult } from './mapper';
export { CoordinatorClient, CoordinatorHttpError, SessionExpiredError, InsecureCoordinatorError, type PeerMapUpdate } from './coordinator';
export type { Peer as PeerEntry, JoinResponse, TokenView } from './coordinator';
export { generatePrivateKey, publicKeyFromPrivate, keyToBase64, keyFromBase64 } from './protocol';
