// The playground: starts a generation, follows its events, shows plan, stages, cost and
// the page. State that must survive a reload (the key, the running job, the last result)
// lives in this tab's sessionStorage only.
import { follow } from "/playground/sse.js";
import { describePatch, renderPage } from "/playground/preview.js";

const $ = (id) => document.getElementById(id);
const store = {
  get: (name) => JSON.parse(sessionStorage.getItem(`nocode.${name}`) || "null"),
  set: (name, value) => sessionStorage.setItem(`nocode.${name}`, JSON.stringify(value)),
  drop: (name) => sessionStorage.removeItem(`nocode.${name}`),
};
let running = null;  // { job_id, events_url, status_url, controller }
const rows = new Map();
const totals = { cost: 0, input: 0, output: 0 };

function headers() {
  const key = $("key").value.trim();
  return key ? { authorization: `Bearer ${key}` } : {};
}

function setStatus(text, state) {
  $("status").textContent = text;
  $("status").dataset.state = state;
}

function source() {
  return document.querySelector("input[name=source]:checked").value;
}

function currentPage() {
  if (source() === "new") return null;
  if (source() === "last") return store.get("lastPage");
  const text = $("page-json").value.trim();
  return text ? JSON.parse(text) : null;
}

function row(agent, sections) {
  const id = sections && sections.length ? `${agent} ${sections.join(",")}` : agent;
  if (!rows.has(id)) {
    const li = document.createElement("li");
    li.dataset.agent = agent;
    if (sections && sections.length) li.classList.add("sub");
    li.innerHTML = "<span class=a></span><span class=s></span><span class=d></span>";
    li.querySelector(".a").textContent = sections && sections.length ? `${agent} · ${sections.join(", ")}` : agent;
    // A section's row goes under its agent's (after the agent's other sections).
    const siblings = [...rows.entries()].filter(([key]) => key.startsWith(agent + " ")).map(([, el]) => el);
    const anchor = id === agent ? null : siblings.at(-1) || rows.get(agent);
    if (anchor) anchor.after(li);
    else $("stages").append(li);
    rows.set(id, li);
  }
  return rows.get(id);
}

function showStage(data) {
  const li = row(data.agent, data.sections);
  li.dataset.status = data.status;
  li.querySelector(".s").textContent = data.status + (data.attempt > 1 ? ` (try ${data.attempt})` : "");
  const bits = [];
  if (data.duration_ms != null) bits.push(`${(data.duration_ms / 1000).toFixed(1)} s`);
  if (data.usage) {
    bits.push(`${data.usage.input_tokens + (data.usage.cache_read_input_tokens || 0)} in / ${data.usage.output_tokens} out tokens`);
    bits.push(`$${(data.usage.cost_usd || 0).toFixed(4)}`);
    totals.cost += data.usage.cost_usd || 0;
    totals.input += data.usage.input_tokens || 0;
    totals.output += data.usage.output_tokens || 0;
    $("totals").textContent = `So far: ${totals.input} input and ${totals.output} output tokens, $${totals.cost.toFixed(4)}.`;
  }
  if (data.error) bits.push(`error: ${data.error}`);
  li.querySelector(".d").textContent = bits.join(" · ");
  if (data.sections && data.sections.length) showFanOut(data.agent);
}

function showFanOut(agent) {
  // An agent fanned out over sections: its own row sums up its section rows.
  const parts = [...rows.entries()].filter(([id]) => id.startsWith(agent + " ")).map(([, li]) => li.dataset.status);
  const status = parts.includes("failed") ? "failed" : parts.every((s) => s === "completed") ? "completed" : "started";
  const li = row(agent);
  li.dataset.status = status;
  li.querySelector(".s").textContent = status;
  li.querySelector(".d").textContent = `${parts.filter((s) => s === "completed").length} of ${parts.length} sections done`;
}

function showPlan(data) {
  const plan = $("plan");
  plan.textContent = "";
  const p = document.createElement("p");
  const sure = data.confidence == null ? "forced by the request" : `planner confidence ${Math.round(data.confidence * 100)}%`;
  p.textContent = `Plan: ${data.plan.length} agents run (${sure})` + (data.deduplicated ? ", attached to an identical running job" : "") + (data.cached ? ", answered from cache" : "") + ".";
  plan.append(p);
  for (const agent of data.plan) {
    const li = row(agent);
    if (!li.dataset.status) { li.dataset.status = "waiting"; li.querySelector(".s").textContent = "waiting"; }
  }
  for (const agent of data.skipped || []) {
    const li = row(agent);
    li.dataset.status = "skipped";
    li.querySelector(".s").textContent = "skipped";
    li.querySelector(".d").textContent = "the instruction does not need it";
  }
}

function showResult(data) {
  $("result").hidden = false;
  $("preview").srcdoc = renderPage(data.page);
  $("json").textContent = JSON.stringify(data.page, null, 2);
  const diff = $("diff");
  diff.textContent = "";
  const lines = describePatch(data.patch);
  $("diff-box").hidden = !lines.length;
  for (const [kind, text] of lines) {
    const li = document.createElement("li");
    li.className = kind;
    li.textContent = text;
    diff.append(li);
  }
  const review = data.review || {};
  $("review").textContent = review.summary ? `Review: ${review.summary}` : "";
  const total = data.usage?.total;
  if (total) $("totals").textContent = `Total: ${total.calls} calls, ${total.input_tokens} input, ${total.cache_read_input_tokens} cached and ${total.output_tokens} output tokens, $${total.cost_usd.toFixed(4)}${data.cached ? " (answered from cache)" : ""}.`;
  store.set("lastPage", data.page);
  $("source-last").disabled = false;
}

function onEvent(event) {
  const data = event.data;
  if (event.event === "accepted") { showPlan(data); setStatus(`Job ${data.job_id}: running`, "running"); }
  else if (event.event === "queued") setStatus(`Waiting for budget: position ${data.position}, about ${Math.round(data.estimated_wait_s)} s`, "queued");
  else if (event.event === "stage") { showStage(data); setStatus(`Running: ${data.agent} ${data.status}`, "running"); }
  else if (event.event === "result") { showResult(data); setStatus("Succeeded", "succeeded"); finish(); }
  else if (event.event === "error") {
    setStatus(data.type === "cancelled" ? "Cancelled" : `Failed: ${data.type}: ${data.message}`, data.type === "cancelled" ? "cancelled" : "failed");
    finish();
  }
}

function finish() {
  store.drop("job");
  running = null;
  $("cancel").disabled = true;
  $("go").disabled = false;
  $("connection").textContent = "";
}

async function watch(job, lastId) {
  const controller = new AbortController();
  running = { ...job, controller };
  $("cancel").disabled = false;
  $("go").disabled = true;
  try {
    await follow(job.events_url, headers(), lastId, {
      onEvent,
      onDrop: (id, attempt) => { $("connection").textContent = `Connection lost; reconnecting from event ${id} (attempt ${attempt})…`; },
      signal: controller.signal,
    });
  } catch (error) {
    setStatus(`Could not follow the job: ${error.message}`, "failed");
    finish();
  }
}

function reset() {
  rows.clear();
  $("stages").textContent = "";
  $("plan").textContent = "";
  $("totals").textContent = "";
  $("form-error").textContent = "";
  Object.assign(totals, { cost: 0, input: 0, output: 0 });
}

async function generate(event) {
  event.preventDefault();
  reset();
  let page;
  try { page = currentPage(); } catch (error) { $("form-error").textContent = `The page document is not JSON: ${error.message}`; return; }
  store.set("key", $("key").value.trim());
  const pageId = encodeURIComponent($("page-id").value.trim());
  const body = { instruction: $("instruction").value, page, priority: $("priority").value, stream: false };
  setStatus("Submitting…", "submitting");
  const reply = await fetch(`/v1/pages/${pageId}/generate`, {
    method: "POST", headers: { ...headers(), "content-type": "application/json" }, body: JSON.stringify(body),
  });
  const answer = await reply.json().catch(() => ({}));
  if (reply.status !== 202) {
    const error = answer.error || {};
    $("form-error").textContent = `${reply.status} ${error.type || ""}: ${error.message || "refused"}` + (reply.headers.get("retry-after") ? ` (retry after ${reply.headers.get("retry-after")} s)` : "");
    setStatus("Refused", "failed");
    return;
  }
  store.set("job", answer);
  await watch(answer, 0);
}

async function cancel() {
  if (!running) return;
  $("cancel").disabled = true;
  setStatus("Cancelling…", "cancelling");
  await fetch(running.status_url, { method: "DELETE", headers: headers() });
}

function init() {
  $("key").value = store.get("key") || "";
  $("source-last").disabled = !store.get("lastPage");
  for (const radio of document.querySelectorAll("input[name=source]"))
    radio.addEventListener("change", () => { $("paste-box").hidden = source() !== "paste"; });
  $("page-file").addEventListener("change", async (e) => { const f = e.target.files[0]; if (f) $("page-json").value = await f.text(); });
  $("form").addEventListener("submit", generate);
  $("cancel").addEventListener("click", cancel);
  $("edit").addEventListener("click", () => {
    $("source-last").disabled = false;
    $("source-last").checked = true;
    $("paste-box").hidden = true;
    $("instruction").value = "";
    $("instruction").focus();
  });
  const job = store.get("job");
  if (job && job.events_url) {  // a reload mid-job: pick the stream up where it was
    setStatus(`Resuming job ${job.job_id}…`, "running");
    $("connection").textContent = `Resumed after a reload: the job's events are read again from the start.`;
    watch(job, 0);  // from the start, so that plan and stages are drawn again
  }
}

init();
