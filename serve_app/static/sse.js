// The SSE contract's client: a job's events over fetch (EventSource cannot send an
// Authorization header), resumed with Last-Event-ID when the connection drops.

/** Split a chunk of an event stream into complete events; returns [events, rest]. */
export function parseEvents(buffer) {
  const events = [];
  const blocks = buffer.split(/\r?\n\r?\n/);
  const rest = blocks.pop();
  for (const block of blocks) {
    const event = { id: null, event: "message", data: "" };
    for (const line of block.split(/\r?\n/)) {
      if (!line || line.startsWith(":")) continue;
      const at = line.indexOf(":");
      const name = at < 0 ? line : line.slice(0, at);
      const value = at < 0 ? "" : line.slice(at + 1).replace(/^ /, "");
      if (name === "data") event.data += value;
      else if (name === "id") event.id = Number(value);
      else if (name === "event") event.event = value;
    }
    if (event.data) events.push({ ...event, data: JSON.parse(event.data) });
  }
  return [events, rest];
}

/**
 * Follow a job's events from after `lastId` until its `result` or `error`, calling
 * `onEvent(event)` for each and `onDrop(lastId, attempt)` when the connection drops
 * (then it reconnects). Stops when `signal` aborts.
 */
export async function follow(eventsUrl, headers, lastId, { onEvent, onDrop, signal }) {
  for (let attempt = 1; ; attempt++) {
    let ended = false;
    try {
      const reply = await fetch(eventsUrl, {
        headers: { ...headers, ...(lastId ? { "last-event-id": String(lastId) } : {}) },
        signal,
      });
      if (!reply.ok) throw new Error(`${reply.status} ${await reply.text()}`);
      const reader = reply.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        const [events, rest] = parseEvents(buffer);
        buffer = rest;
        for (const event of events) {
          if (event.id) lastId = event.id;
          onEvent(event);
          if (event.event === "result" || event.event === "error") ended = true;
        }
        if (ended) return;
      }
    } catch (error) {
      if (signal && signal.aborted) return;
      if (String(error).match(/^Error: 4\d\d/)) throw error;  // not ours, or gone: no retry
    }
    if (signal && signal.aborted) return;
    onDrop(lastId, attempt);
    await new Promise((done) => setTimeout(done, Math.min(5000, 500 * attempt)));
  }
}
