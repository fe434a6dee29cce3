import type { DeviceEvent, ReadingEvent } from '../lib';
import type { Msg, Node, NodeDef, RED } from '../shared/red';
import type { DeviceStoreNode } from '../shared/stores';

/** What a device-events node sends: every accepted reading, or the device events. */
type Source = 'readings' | 'events';

/** A reading as a message: msg.payload is the reading, msg.topic the device id (a switch or filter node routes on it). */
function readingMessage(r: ReadingEvent): Msg {
  return { topic: r.deviceid, deviceid: r.deviceid, payload: r };
}

/** A device event as a message: msg.topic is the event's name, msg.payload the event. */
function eventMessage(e: DeviceEvent): Msg {
  return { topic: e.event, deviceid: e.deviceid, payload: e };
}

export = function register(RED: RED) {
  function DeviceEvents(this: Node, def: NodeDef) {
    RED.nodes.createNode(this, def);
    const source: Source = def.source === 'events' ? 'events' : 'readings';
    const storeNode = typeof def.store === 'string' && def.store ? (RED.nodes.getNode(def.store) as DeviceStoreNode | null) : null;
    if (!storeNode?.events) {
      this.error(RED._('e2ee.errors.no-store'));
      this.status({ fill: 'red', shape: 'ring', text: RED._('device-events.status.no-store') });
      return;
    }
    let count = 0;
    // The count shows on the node, at most every second, so a busy fleet costs no status message per reading.
    let shown = 0;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const show = () => {
      timer = undefined;
      shown = count;
      this.status({ fill: 'green', shape: 'dot', text: RED._(`device-events.status.${source}`, { count: shown }) });
    };
    const sent = () => {
      count++;
      if (!timer) timer = setTimeout(show, shown === 0 ? 0 : 1000);
    };
    const unsubscribe = source === 'readings'
      ? storeNode.events.onReading((r) => {
        this.send(readingMessage(r));
        sent();
      })
      : storeNode.events.onEvent((e) => {
        this.send(eventMessage(e));
        sent();
      });
    this.on('close', (_removed, done) => {
      unsubscribe();
      clearTimeout(timer);
      done();
    });
  }
  RED.nodes.registerType('device-events', DeviceEvents);
};
