/**
 * Bench subject `wireguard-go-current`: today's upstream wireguard-go (the generation with Linux
 * TUN TCP/UDP segmentation offload via IFF_VNET_HDR and UDP GSO/GRO on its socket), hub-and-spoke
 * exactly like the Debian subject (wireguard-go-hub.ts). Debian does not package it: it is the
 * static build `shared/peers/wireguard-go-offload` kept beside the checkout (its README gives the
 * upstream commit and the build), or whatever `ISTHMUS_WG_GO_CURRENT` names.
 *
 * Lookup: $ISTHMUS_WG_GO_CURRENT if set (and then only it), else `shared/peers/wireguard-go-offload`
 * in the nearest directory above this file that has one (`../shared/peers/...` from the checkout,
 * also from a worktree nested deeper). Absent, the subject is unavailable and the bench skips it.
 */
import { accessSync, constants, existsSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { run } from '../procs';
import type { BenchSubject } from '../subject';
import { wireguardGoHubShape } from './wireguard-go-hub';

export const WG_GO_CURRENT_ENV = 'ISTHMUS_WG_GO_CURRENT';
export const WG_GO_CURRENT_REL = join('shared', 'peers', 'wireguard-go-offload');

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

export type WgGoCurrentLookup = { path: string } | { missing: string };

/** Where the current wireguard-go build is, or why it was not found (a message naming the places looked). */
export function findWireguardGoCurrent(env: NodeJS.ProcessEnv = process.env, from: string = __dirname): WgGoCurrentLookup {
  const fromEnv = env[WG_GO_CURRENT_ENV];
  if (fromEnv) {
    const path = resolve(fromEnv);
    return executable(path) ? { path } : { missing: `${WG_GO_CURRENT_ENV}=${fromEnv} is not an executable file` };
  }
  for (let d = resolve(from); ; d = dirname(d)) {
    const candidate = join(d, WG_GO_CURRENT_REL);
    if (existsSync(candidate) && executable(candidate)) return { path: candidate };
    if (d === dirname(d)) break;
  }
  return { missing: `no executable ${WG_GO_CURRENT_REL} in any directory above ${resolve(from)}; set ${WG_GO_CURRENT_ENV} to the wireguard-go build to use` };
}

export function wireguardGoCurrentSubject(): BenchSubject {
  const lookup = () => findWireguardGoCurrent();
  const binary = () => {
    const l = lookup();
    if ('missing' in l) throw new Error(`wireguard-go-current: ${l.missing}`);
    return l.path;
  };
  return wireguardGoHubShape({
    name: 'wireguard-go-current',
    binary,
    requires: ['wg'],
    unavailable: () => {
      const l = lookup();
      return 'missing' in l ? l.missing : undefined;
    },
    async describe() {
      const path = binary();
      const v = await run(path, ['--version'], { check: false });
      const version = v.stdout.split('\n')[0]?.trim() || 'wireguard-go';
      return `wireguard-go-current: ${version} (${basename(path)}, upstream build with TUN TSO/USO + UDP GSO/GRO) hub-and-spoke`;
    },
  });
}
