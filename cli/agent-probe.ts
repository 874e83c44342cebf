/**
 * What a gateway (`isthmus mapper --gateway`) asks its local agent, through the agent's
 * control socket (the status document `isthmus status` prints): its virtual IP (the gateway's
 * member identity, for the policy) and whether the overlay is up (a TUN device and an
 * authenticated relay session), for /readyz. Answers are kept `maxAgeMs`, so probes and
 * proxied connections cost at most one socket read per period.
 */
import { readControlSocket } from '../node-agent';

export interface AgentView {
  vip: string | null;
  overlayUp: boolean;
}

export function agentProbe(path: string, maxAgeMs = 500): () => Promise<AgentView> {
  let last: { at: number; view: AgentView } | undefined;
  let pending: Promise<AgentView> | undefined;
  return () => {
    if (last && Date.now() - last.at < maxAgeMs) return Promise.resolve(last.view);
    pending ??= readControlSocket(path, 1000).then((s) => {
      const st = s as { vip?: unknown; tun?: unknown; relay?: { ready?: unknown } };
      return { vip: typeof st.vip === 'string' ? st.vip : null, overlayUp: typeof st.tun === 'string' && st.relay?.ready === true };
    }, () => ({ vip: null, overlayUp: false })).then((view) => {
      last = { at: Date.now(), view };
      pending = undefined;
      return view;
    });
    return pending;
  };
}
