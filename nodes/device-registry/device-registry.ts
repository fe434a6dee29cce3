import { deviceApiJsonBodies, inputFunnel, rawReadingsBody, runAction } from '../lib';
import type { Msg, Node, NodeDef, RED } from '../shared/red';
import { resolveStore } from '../shared/stores';

/** msg.deviceid, or the :deviceid route parameter when the message comes straight from an http in node. */
function deviceIdFrom(msg: Msg): unknown {
  if (msg.deviceid !== undefined) return msg.deviceid;
  const req = msg.req as { params?: Record<string, unknown> } | undefined;
  return req?.params?.deviceid;
}

export = function register(RED: RED) {
  // The shipped readings route needs its body raw (see lib/raw-body): installed once, when the package loads.
  RED.httpNode?.use(rawReadingsBody());
  // The other device API routes: a malformed JSON body gets 400 and an oversized one 413, not Node-RED's 500.
  RED.httpNode?.use(deviceApiJsonBodies((key, params) => RED._(key, params)));
  function DeviceRegistry(this: Node, def: NodeDef) {
    RED.nodes.createNode(this, def);
    const configured = typeof def.action === 'string' && def.action ? def.action : 'get';
    const requireToken = def.requireToken === true || def.requireToken === 'true';
    const t = (key: string, params?: Record<string, unknown>) => RED._(key, params);

    this.on('input', inputFunnel<Msg>(this, t, async (msg) => {
      const storeNode = resolveStore(RED, def.store);
      const action = typeof msg.action === 'string' && msg.action ? msg.action : configured;
      const req = msg.req as { headers?: Record<string, unknown> } | undefined;
      const res = await runAction(
        storeNode.store,
        {
          action,
          deviceid: deviceIdFrom(msg),
          body: msg.payload,
          heartbeatMs: storeNode.heartbeat * 1000,
          seqn: msg.seqn,
          auth: requireToken ? { header: req?.headers?.authorization, token: storeNode.credentials?.token } : undefined,
        },
        t,
      );
      if (res.audit) this.warn(res.audit);
      msg.payload = res.payload;
      msg.statusCode = res.statusCode;
      if (res.total !== undefined) msg.total = res.total;
      if (res.headers) msg.headers = { ...(msg.headers as Record<string, string> | undefined), ...res.headers };
      if (res.seqn !== undefined) msg.seqn = res.seqn;
      if (res.pushUrl !== undefined) msg.pushUrl = res.pushUrl;
      return msg;
    }));
  }
  RED.nodes.registerType('device-registry', DeviceRegistry);
};
