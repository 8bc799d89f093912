// The mmsearch search page: plain ES module over the JSON API (POST /search, /search/upload,
// GET /items/{id}[/thumbnail|/preview|/file], GET /status). Everything from the index (names,
// folders, tags, transcripts, text read in images, file contents) goes into the page with
// textContent or as attribute values, never as markup; the server's CSP forbids inline script.

const PAGE = 40;
const DEBOUNCE_MS = 40; // one request per pause in typing, not one per key
const $ = (id) => document.getElementById(id);

const state = {
  token: sessionStorage.getItem("mmsearch-token"),
  k: PAGE,
  example: null, // {label, file, field} for an upload, or {label, body} for "more like this"
  hits: [],
  seq: 0,
  controller: null,
  timer: 0,
  thumbs: new Map(),
  login: null,
  current: null,
};

class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

// -- the API, with the token ------------------------------------------------------------------

async function api(path, options = {}) {
  const headers = new Headers(options.headers || {});
  if (state.token) headers.set("Authorization", `Bearer ${state.token}`);
  const res = await fetch(path, { ...options, headers });
  if (res.status === 401) {
    await askToken(state.token ? "That token was refused; try again." : "");
    return api(path, options);
  }
  if (!res.ok) {
    let message = `${res.status} ${res.statusText}`;
    try {
      message = (await res.json()).error || message;
    } catch {
      /* not JSON: keep the status line */
    }
    throw new ApiError(message, res.status);
  }
  return res;
}

function askToken(problem) {
  if (state.login) return state.login;
  const dialog = $("login");
  $("login-error").textContent = problem;
  $("login-error").hidden = !problem;
  state.login = new Promise((resolve) => {
    $("login-form").addEventListener("submit", () => {
      state.token = $("token").value.trim();
      sessionStorage.setItem("mmsearch-token", state.token); // this tab only, gone when closed
      state.login = null;
      resolve();
    }, { once: true });
  });
  dialog.showModal();
  $("token").focus();
  return state.login;
}

// -- media the page shows (fetched with the token when there is one) ---------------------------

async function mediaUrl(path) {
  if (!state.token) return path; // the browser fetches (and caches) it directly
  if (!state.thumbs.has(path)) {
    state.thumbs.set(path, api(path).then((r) => r.blob()).then((b) => URL.createObjectURL(b)));
  }
  return state.thumbs.get(path);
}

function showImage(img, path) {
  mediaUrl(path).then((url) => { img.src = url; }, () => img.classList.add("broken"));
}

// -- searching ---------------------------------------------------------------------------------

function queryText() {
  let text = $("q").value.trim();
  if ($("after").value) text += ` after:${$("after").value}`;
  if ($("before").value) text += ` before:${$("before").value}`;
  return text.trim();
}

function searchBody() {
  const body = { k: state.k };
  const text = queryText();
  if (text) body.text = text;
  if ($("kind").value) body.kinds = [$("kind").value];
  if ($("folder").value) body.folders = [$("folder").value];
  const min = $("min").value;
  if (min !== "" && Number.isFinite(Number(min))) body.min_score = Number(min);
  if (state.example && state.example.body) Object.assign(body, state.example.body);
  return body;
}

function schedule() {
  performance.mark("mmsearch-input");
  clearTimeout(state.timer);
  state.k = PAGE;
  state.timer = setTimeout(() => run(false), DEBOUNCE_MS);
}

async function run(more) {
  const body = searchBody();
  const seq = ++state.seq;
  if (state.controller) state.controller.abort();
  if (!body.text && !state.example) {
    draw([], false);
    setStatus("");
    showError("");
    return;
  }
  state.controller = new AbortController();
  const signal = state.controller.signal;
  let res;
  try {
    if (state.example && state.example.file) {
      const form = new FormData();
      form.append("query", JSON.stringify(body));
      form.append(state.example.field, state.example.file, state.example.file.name);
      res = await api("/search/upload", { method: "POST", body: form, signal });
    } else {
      res = await api("/search", {
        method: "POST", body: JSON.stringify(body), signal,
        headers: { "Content-Type": "application/json" },
      });
    }
    const answer = await res.json();
    if (seq !== state.seq) return; // a newer search is on its way
    showError("");
    draw(answer.hits, more);
    const n = answer.hits.length;
    setStatus(`${n}${n === state.k ? "+" : ""} result${n === 1 ? "" : "s"} in ${Math.round(answer.took_ms)} ms`);
  } catch (err) {
    if (err.name === "AbortError" || seq !== state.seq) return;
    showError(err.message);
    draw([], false);
    setStatus("");
  }
}

function showError(message) {
  // Query mistakes come with the query and a caret under the mistake: a <pre> keeps them aligned.
  $("error").textContent = message;
  $("error").hidden = !message;
}

function setStatus(text) {
  $("status").textContent = text;
}

// -- drawing results ---------------------------------------------------------------------------

function baseName(path) {
  return path.slice(path.lastIndexOf("/") + 1);
}

function folderOf(path) {
  return path.slice(0, Math.max(1, path.lastIndexOf("/")));
}

function clock(seconds) {
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = String(s % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${r}` : `${m}:${r}`;
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

function card(hit, index) {
  const li = el("li", `card kind-${hit.kind}`);
  li.tabIndex = 0;
  li.dataset.index = String(index);
  const visual = el("div", "visual");
  if (hit.kind === "image" && hit.id) {
    const img = el("img");
    img.alt = "";
    img.loading = "lazy";
    img.decoding = "async";
    showImage(img, `/items/${hit.id}/thumbnail?size=256`);
    visual.append(img);
  } else if (hit.kind === "video" && hit.id && hit.width) {
    const img = el("img");
    img.alt = "";
    img.loading = "lazy";
    img.decoding = "async";
    // the shot that matched, not the film's first frame
    showImage(img, `/items/${hit.id}/thumbnail?size=256${hit.start != null ? `&t=${hit.start}` : ""}`);
    visual.append(img);
  } else {
    visual.append(el("span", "glyph", { audio: "♪", video: "▶" }[hit.kind] || "¶"));
  }
  li.append(visual);
  const name = el("div", "name", baseName(hit.path));
  name.title = hit.path;
  li.append(name, el("div", "folder", folderOf(hit.path)));
  const meta = el("div", "meta");
  meta.append(el("span", "kind", hit.kind), el("span", "score", hit.score.toFixed(2)));
  if (hit.start !== null && hit.start !== undefined) {
    const play = el("button", "play", `▶ ${clock(hit.start)}–${clock(hit.end ?? hit.start)}`);
    play.type = "button";
    play.title = "Play from here";
    play.addEventListener("click", (event) => {
      event.stopPropagation();
      playFrom(hit, li);
    });
    meta.append(play);
  }
  li.append(meta);
  li.addEventListener("click", () => openDetails(hit));
  return li;
}

function draw(hits, more) {
  const list = $("results");
  const kept = more ? state.hits.length : 0;
  if (!more) list.replaceChildren();
  const fresh = document.createDocumentFragment();
  hits.slice(kept).forEach((hit, i) => fresh.append(card(hit, kept + i)));
  list.append(fresh);
  state.hits = hits;
  $("more").hidden = hits.length < state.k;
  requestAnimationFrame(() => {
    performance.mark("mmsearch-drawn");
    try {
      performance.measure("mmsearch-search", "mmsearch-input", "mmsearch-drawn");
    } catch {
      /* no input mark (a "more" page or a filter change): nothing to measure */
    }
    document.body.dataset.drawn = String(state.seq);
  });
}

function loadMore() {
  if ($("more").hidden) return;
  state.k += PAGE;
  run(true);
}

async function playFrom(hit, where) {
  const audio = where.querySelector("audio") || el("audio");
  audio.controls = true;
  const seconds = Math.max(10, (hit.end ?? hit.start) - hit.start + 5);
  audio.src = await mediaUrl(`/items/${hit.id}/preview?start=${hit.start}&seconds=${seconds}`);
  if (!audio.isConnected) where.append(audio);
  audio.play().catch(() => {});
}

// -- details -----------------------------------------------------------------------------------

function row(list, label, value) {
  if (value === null || value === undefined || value === "") return;
  list.append(el("dt", "", label), el("dd", "", value));
}

function section(body, title, lines) {
  if (!lines.length) return;
  body.append(el("h3", "", title));
  const ul = el("ul", "lines");
  for (const line of lines) ul.append(el("li", "", line));
  body.append(ul);
}

async function openDetails(hit) {
  state.current = hit;
  const body = $("details-body");
  body.replaceChildren(el("h2", "", baseName(hit.path)), el("p", "path", hit.path));
  $("details").showModal();
  let info = {};
  try {
    info = await (await api(`/items/${hit.id}`)).json();
  } catch (err) {
    body.append(el("p", "error", err.message));
    return;
  }
  if (state.current !== hit) return;
  if (hit.kind === "image") {
    const img = el("img", "large");
    img.alt = "";
    showImage(img, `/items/${hit.id}/thumbnail?size=1024`);
    body.append(img);
  } else if (hit.kind === "audio") {
    const box = el("div", "player");
    body.append(box);
    playFrom({ ...hit, start: hit.start ?? 0, end: hit.end ?? 10 }, box);
  } else if (hit.kind === "video") {
    if (info.moments && info.moments.length) {
      const img = el("img", "large");
      img.alt = "";
      showImage(img, `/items/${hit.id}/thumbnail?size=1024&t=${hit.start ?? 0}`);
      body.append(img);
    }
    if (info.sample_rate) {
      const box = el("div", "player");
      body.append(box);
      playFrom({ ...hit, start: hit.start ?? 0, end: hit.end ?? 10 }, box);
    }
  } else {
    const pre = el("pre", "text", "…");
    body.append(pre);
    api(`/items/${hit.id}/file`).then((r) => r.text()).then((t) => { pre.textContent = t.slice(0, 4000); },
      (err) => { pre.textContent = err.message; });
  }
  const dl = el("dl");
  row(dl, "Kind", info.kind);
  row(dl, "Score", hit.score.toFixed(3));
  row(dl, "Size", `${(info.size / 1024).toFixed(1)} KB`);
  if (info.width) row(dl, "Pixels", `${info.width} × ${info.height}`);
  row(dl, "Taken", info.taken_at);
  if (info.duration) row(dl, "Duration", clock(info.duration));
  row(dl, "Codec", info.codec);
  if (info.frame_rate) row(dl, "Frame rate", `${info.frame_rate} fps`);
  if (info.rotation) row(dl, "Rotation", `${info.rotation}°`);
  if (info.sample_rate) row(dl, "Sound", `${info.sample_rate} Hz, ${info.channels} channel(s)`);
  if (hit.start !== null && hit.start !== undefined) row(dl, "Match", `${clock(hit.start)}–${clock(hit.end)}`);
  body.append(dl);
  section(body, "Tags", (info.tags || []).map(([label, score]) => `${label} (${Number(score).toFixed(2)})`));
  section(body, "Transcript", (info.transcript || []).map(([s, e, t]) => `${clock(s)}–${clock(e)}  ${t}`));
  section(body, "Text in the image", info.read_text || []);
  section(body, "Shots", (info.moments || []).map(([s, e]) => `${clock(s)}–${clock(e)}`));
}

async function moreLikeThis(hit) {
  let body;
  // a video's example is its keyframes' look (the mean of its stored picture vectors)
  if (hit.kind === "image" || (hit.kind === "video" && hit.width)) body = { image_ids: [hit.id] };
  else if (hit.kind === "audio") body = { audio_ids: [hit.id] };
  else {
    // a text has no example route: its opening words stand in for it (quotes are not allowed)
    const text = await (await api(`/items/${hit.id}/file`)).text();
    body = { terms: [{ text: text.replace(/"/g, " ").replace(/\s+/g, " ").trim().slice(0, 300) || baseName(hit.path) }] };
  }
  $("details").close();
  $("q").value = "";
  setExample({ label: `More like ${baseName(hit.path)}`, body });
}

async function download(hit) {
  // Through a blob and a download link: the file is saved, never opened as a page here.
  const blob = await (await api(`/items/${hit.id}/file`)).blob();
  const a = el("a");
  a.href = URL.createObjectURL(blob);
  a.download = baseName(hit.path);
  a.click();
  setTimeout(() => URL.revokeObjectURL(a.href), 10000);
}

// -- examples: more like this, drop, paste, pick -----------------------------------------------

function setExample(example) {
  state.example = example;
  $("example").hidden = !example;
  $("example-name").textContent = example ? example.label : "";
  schedule();
}

function exampleFile(file) {
  const kind = file.type.startsWith("audio/") || /\.(wav|flac|mp3|ogg|m4a|opus|aiff?)$/i.test(file.name)
    ? "audios" : "images";
  setExample({ label: `Like ${file.name}`, file, field: kind });
}

function firstFile(items) {
  for (const item of items || []) {
    const file = item.getAsFile ? (item.kind === "file" ? item.getAsFile() : null) : item;
    if (file) return file;
  }
  return null;
}

// -- keyboard ----------------------------------------------------------------------------------

function cards() {
  return [...$("results").children];
}

function columns() {
  const all = cards();
  if (!all.length) return 1;
  const top = all[0].offsetTop;
  const n = all.findIndex((c) => c.offsetTop !== top);
  return n === -1 ? all.length : n;
}

function onGridKey(event) {
  const target = event.target.closest(".card");
  if (!target) return;
  const all = cards();
  const i = Number(target.dataset.index);
  const step = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: columns(), ArrowUp: -columns() }[event.key];
  if (step !== undefined) {
    event.preventDefault();
    if (i + step < 0) { $("q").focus(); return; }
    const next = all[Math.min(all.length - 1, i + step)];
    next.focus();
    if (i + step >= all.length - columns()) loadMore();
  } else if (event.key === "Enter") {
    openDetails(state.hits[i]);
  } else if (event.key === "m") {
    moreLikeThis(state.hits[i]);
  }
}

// -- start -------------------------------------------------------------------------------------

async function start() {
  $("q").addEventListener("input", schedule);
  $("search").addEventListener("submit", (e) => { e.preventDefault(); schedule(); });
  for (const id of ["kind", "folder", "after", "before", "min"]) $(id).addEventListener("change", schedule);
  $("q").addEventListener("keydown", (e) => {
    if (e.key === "ArrowDown" && cards().length) { e.preventDefault(); cards()[0].focus(); }
  });
  $("results").addEventListener("keydown", onGridKey);
  document.addEventListener("keydown", (e) => {
    if (e.key === "/" && !e.target.closest("input, select, textarea, dialog")) { e.preventDefault(); $("q").focus(); }
  });
  $("example-clear").addEventListener("click", () => setExample(null));
  $("details-close").addEventListener("click", () => $("details").close());
  $("details-like").addEventListener("click", () => moreLikeThis(state.current));
  $("details-open").addEventListener("click", () => download(state.current));
  $("more").addEventListener("click", loadMore);
  new IntersectionObserver((entries) => {
    if (entries.some((e) => e.isIntersecting)) loadMore();
  }).observe($("more"));
  $("pick-button").addEventListener("click", () => $("pick").click());
  $("pick").addEventListener("change", () => { if ($("pick").files[0]) exampleFile($("pick").files[0]); });
  document.addEventListener("paste", (e) => {
    const file = firstFile(e.clipboardData && e.clipboardData.items);
    if (file) { e.preventDefault(); exampleFile(file); }
  });
  document.addEventListener("dragover", (e) => { e.preventDefault(); $("drop").hidden = false; });
  document.addEventListener("dragleave", (e) => { if (!e.relatedTarget) $("drop").hidden = true; });
  document.addEventListener("drop", (e) => {
    e.preventDefault();
    $("drop").hidden = true;
    const file = firstFile(e.dataTransfer && e.dataTransfer.files);
    if (file) exampleFile(file);
  });
  try {
    const status = await (await api("/status")).json();
    for (const folder of status.folders) {
      const option = el("option", "", folder);
      option.value = folder;
      $("folder").append(option);
    }
    const items = Object.values(status.items || {}).reduce((a, b) => a + b, 0);
    setStatus(status.ready ? `${items} items indexed` : "The model is loading…");
  } catch (err) {
    showError(err.message);
  }
  document.body.dataset.ready = "1";
}

start();
