"""The playground page at ``GET /``: type an instruction, watch the events stream in."""

PLAYGROUND_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>nocode-ai playground</title>
<style>
body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}
textarea,input{width:100%;box-sizing:border-box;font:inherit;padding:.4rem}
pre{background:#0f172a;color:#e2e8f0;padding:1rem;overflow:auto;max-height:28rem}
button{font:inherit;padding:.4rem 1rem;margin-top:.5rem}
</style></head><body>
<h1>nocode-ai playground</h1>
<p>Runs a generation through the gateway and shows its Server-Sent Events.</p>
<label>API key (leave empty when auth is off)<input id="key" autocomplete="off"></label>
<label>Page id<input id="page" value="playground"></label>
<label>Instruction<textarea id="instruction" rows="3">Create a landing page for a coffee shop
with a hero banner, a menu grid and a contact form</textarea></label>
<button id="go">Generate</button>
<pre id="log"></pre>
<script>
const log = (line) => { const el = document.getElementById("log");
  el.textContent += line + "\\n"; el.scrollTop = el.scrollHeight; };
document.getElementById("go").onclick = async () => {
  document.getElementById("log").textContent = "";
  const key = document.getElementById("key").value.trim();
  const page = encodeURIComponent(document.getElementById("page").value.trim());
  const headers = {"content-type": "application/json"};
  if (key) headers["authorization"] = "Bearer " + key;
  const reply = await fetch(`/v1/pages/${page}/generate`, {method: "POST", headers,
    body: JSON.stringify({instruction: document.getElementById("instruction").value})});
  if (!reply.ok) { log(`${reply.status} ${await reply.text()}`); return; }
  const reader = reply.body.getReader(); const decoder = new TextDecoder();
  while (true) { const {done, value} = await reader.read(); if (done) break;
    for (const line of decoder.decode(value).split("\\n"))
      if (line.startsWith("event:") || line.startsWith("data:")) log(line); }
};
</script></body></html>
"""
