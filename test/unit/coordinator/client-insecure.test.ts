/**
 * The library CoordinatorClient refuses a plain http:// coordinator unless it was built with
 * `insecure: true` (the CLI's --insecure-coordinator): tokens and peer maps would cross the
 * path in clear. Each refusal next to the same client accepted with the option, or over https.
 */
import test from 'ava';
import { CoordinatorClient, InsecureCoordinatorError } from '../../../coordinator/client';

/** A fetch that records the URLs it was asked for and answers a challenge. */
function recorder() {
  const urls: string[] = [];
  const fetch = (async (url: string) => {
    urls.push(url);
    return new Response(JSON.stringify({ id: 'c1', challenge: 'x', expiresAt: 0 }), { status: 200, headers: { 'content-type': 'application/json' } });
  }) as unknown as typeof globalThis.fetch;
  return { urls, fetch };
}

test('http:// without the insecure option is refused at construction, naming the option; with it the client works', async (t) => {
  const r = recorder();
  for (const url of ['http://10.0.0.1:8080', 'HTTP://coord:80/', 'http://[::1]:8080']) {
    const e = t.throws(() => new CoordinatorClient({ url, fetch: r.fetch }), { instanceOf: InsecureCoordinatorError }, url);
    t.is(e!.code, 'ERR_INSECURE_COORDINATOR');
    t.regex(e!.message, /plain http:\/\//);
    t.regex(e!.message, /insecure: true/, 'names the option');
    t.regex(e!.message, /--insecure-coordinator/, 'and the CLI flag');
    t.throws(() => new CoordinatorClient({ url, fetch: r.fetch, insecure: false }), { instanceOf: InsecureCoordinatorError });
  }
  t.deepEqual(r.urls, [], 'nothing was sent');
  // Positive controls in the same setup: the option, and https:// without it.
  t.is((await new CoordinatorClient({ url: 'http://10.0.0.1:8080', fetch: r.fetch, insecure: true }).challenge()).id, 'c1');
  t.is((await new CoordinatorClient({ url: 'https://10.0.0.1:8080', fetch: r.fetch }).challenge()).id, 'c1');
  t.deepEqual(r.urls, ['http://10.0.0.1:8080/v1/challenge', 'https://10.0.0.1:8080/v1/challenge']);
});

test('a URL that is neither https:// nor http:// is refused with what is expected', (t) => {
  for (const url of ['10.0.0.1:8080', 'ftp://coord', 'coord', '']) {
    const e = t.throws(() => new CoordinatorClient({ url, insecure: true }));
    t.regex(e!.message, /must be https:\/\/HOST:PORT/, url);
  }
});
