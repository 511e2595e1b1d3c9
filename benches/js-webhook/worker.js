// The yardstick for the gateway's webhook path (issue #11, item 1): a plain JavaScript worker
// doing the minimal durable work for a delivery — verify its signature with
// `@octokit/webhooks-methods`, insert the delivery id into D1 (once: a redelivery is a no-op)
// and send one queue message. `scripts/bench` runs it beside the gateway and alternates the same
// signed deliveries between the two (benches/gateway.rs, "Webhook path against JavaScript").
// Never deployed.
import { verify } from "@octokit/webhooks-methods";

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (request.method !== "POST" || url.pathname !== "/github/webhooks") {
      return new Response("not found", { status: 404 });
    }
    const delivery = request.headers.get("x-github-delivery");
    const event = request.headers.get("x-github-event");
    const signature = request.headers.get("x-hub-signature-256");
    if (!delivery || !event || !signature) {
      return new Response("missing a GitHub header", { status: 400 });
    }
    const body = await request.text();
    if (!(await verify(env.GITHUB_WEBHOOK_SECRET, body, signature))) {
      return new Response("bad signature", { status: 401 });
    }
    const inserted = await env.DB.prepare(
      "INSERT INTO deliveries (id, event, received_at) VALUES (?1, ?2, ?3) ON CONFLICT (id) DO NOTHING",
    )
      .bind(delivery, event, Date.now())
      .run();
    if (inserted.meta.changes === 1) {
      await env.JOBS.send({ delivery, event });
    }
    return new Response(null, { status: 202 });
  },

  // The messages only have to be consumed.
  async queue(batch) {
    batch.ackAll();
  },
};
