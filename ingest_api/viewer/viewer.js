// The Framewise results viewer: reads the job through the public API (with the API key kept
// in this tab's sessionStorage, when the server asks for one) and draws it. No external
// resources: everything comes from the Framewise server.
"use strict";

const [, , kind, jobId] = location.pathname.split("/");
const api = kind === "videos" ? `/v1/videos/${jobId}` : `/v1/images/${jobId}`;
const $ = (id) => document.getElementById(id);
const PALETTE = ["#3b6fe0", "#1f9d55", "#c98a00", "#8a6fd1", "#d6457a", "#14a3b8", "#6d7c2b", "#b5542d"];
const imageUrls = new Map();

function headers() {
  const key = sessionStorage.getItem("framewise-key");
  return key ? { Authorization: `Bearer ${key}` } : {};
}

async function get(url) {
  const response = await fetch(url, { headers: headers() });
  if (response.status === 401) throw Object.assign(new Error("unauthorized"), { status: 401 });
  if (!response.ok) {
    let detail = response.statusText;
    try { detail = (await response.json()).detail || detail; } catch (e) { /* not JSON */ }
    throw Object.assign(new Error(detail), { status: response.status });
  }
  return response;
}

async function imageUrl(url) {
  if (!imageUrls.has(url)) {
    imageUrls.set(url, get(url).then((r) => r.blob()).then((b) => URL.createObjectURL(b))
      .catch(() => ""));
  }
  return imageUrls.get(url);
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k === "style") Object.assign(node.style, v);
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

const fmt = (s) => {
  const m = Math.floor(s / 60), r = s - 60 * m;
  return `${m}:${r.toFixed(1).padStart(4, "0")}`;
};
const colour = (tag) => PALETTE[[...tag].reduce((h, c) => (h * 31 + c.charCodeAt(0)) >>> 0, 7) % PALETTE.length];
// A body too large for one message gives each thumbnail once (docs/topics.md): a person's
// later scenes show the thumbnail of the first.
const thumbnails = new Map();
const face = (p) => {
  const b64 = p.face_thumbnail || thumbnails.get(p.person_id);
  return b64 ? `data:image/jpeg;base64,${b64}` : "";
};

function showStatus(job) {
  $("job-id").textContent = job.job_id;
  $("status").textContent = job.status;
  $("status").className = `badge ${job.status}`;
  const done = job.status === "finished" || job.status === "failed" ? 1 : job.progress || 0;
  $("progress-bar").style.width = `${Math.round(done * 100)}%`;
  $("progress-bar").classList.toggle("ended", job.status === "finished" || job.status === "failed");
  $("progress-text").textContent = job.status === "finished" ? "done"
    : job.status === "failed" ? "failed" : `${Math.round(done * 100)}%`;
  if (job.error) {
    $("error").hidden = false;
    $("error").textContent = `${job.error.code}: ${job.error.message}`;
  }
}

function personChip(p) {
  const who = [p.gender, p.age !== undefined ? `${Math.round(p.age)} y` : null]
    .filter(Boolean).join(", ");
  return el("div", { class: "person" }, el("img", { src: face(p), alt: p.person_id }),
    el("div", {}, el("b", {}, p.person_id), el("small", {}, who),
      p.allowlisted ? el("small", { class: "allow" }, "allowlisted") : null));
}

function renderVideo(job) {
  const r = job.result;
  if (!r) return;
  $("video").hidden = false;
  const scenes = r.raw_scenes;
  const duration = (r.metadata && r.metadata.duration_seconds) ||
    (scenes.length ? scenes[scenes.length - 1].end_seconds : 1);
  const pct = (t) => `${(100 * Math.min(t, duration)) / duration}%`;
  const wide = (a, b) => `${(100 * (Math.min(b, duration) - Math.min(a, duration))) / duration}%`;

  const persons = new Map();
  r.person_constellation_scenes.forEach((s) => s.person_ids.forEach((p) => {
    if (p.face_thumbnail && !thumbnails.has(p.person_id)) thumbnails.set(p.person_id, p.face_thumbnail);
    if (!persons.has(p.person_id)) persons.set(p.person_id, { person: p, spans: [] });
    persons.get(p.person_id).spans.push(s.time_segment);
  }));
  const m = r.metadata || {};
  $("summary").replaceChildren(
    ...[["scenes", scenes.length], ["people", persons.size], ["texts", r.ocr_results.length],
      ["sections", r.sections.length], ["duration", fmt(duration)],
      ["size", m.width ? `${m.width}×${m.height}` : "–"]]
      .map(([k, v]) => el("div", { class: "stat" }, el("b", {}, String(v)), el("span", { class: "muted" }, k))));

  const sceneNodes = scenes.map((s, i) => {
    const node = el("div", {
      class: "scene", "data-scene": i, title: `scene ${i + 1}: ${fmt(s.start_seconds)}–${fmt(s.end_seconds)}`,
      style: { left: pct(s.start_seconds), width: wide(s.start_seconds, s.end_seconds) },
      onmouseenter: () => showScene(job, i), onclick: () => showScene(job, i, true),
    }, el("span", {}, String(i + 1)));
    imageUrl(`${api}/keyframe?t=${(s.start_seconds + s.end_seconds) / 2}`)
      .then((u) => { if (u) node.style.backgroundImage = `url(${u})`; });
    return node;
  });
  $("scenes").replaceChildren(...sceneNodes);

  const diffs = r.frame_activity_diffs;
  const svg = $("activity");
  const step = m.frame_activity_interval_seconds || duration / Math.max(1, diffs.length);
  svg.setAttribute("viewBox", `0 0 ${duration} 1`);
  const points = diffs.map((d, i) => `${((i + 1) * step).toFixed(3)},${(1 - d).toFixed(4)}`);
  svg.innerHTML = diffs.length
    ? `<polygon points="0,1 ${points.join(" ")} ${((diffs.length) * step).toFixed(3)},1"></polygon>` +
      `<polyline points="${points.join(" ")}"></polyline>` : "";

  $("sections").replaceChildren(...r.sections.map((s) => el("div", { class: "track" },
    s.time_segments.map((t) => el("div", {
      class: `span${s.is_critical ? " critical" : ""}`,
      title: `${s.section_tag} (${Math.round(s.confidence * 100)}%)`,
      style: { left: pct(t.start_seconds), width: wide(t.start_seconds, t.end_seconds), background: colour(s.section_tag) },
    }, s.section_tag)))));

  $("people").replaceChildren(...[...persons.values()].map(({ person, spans }) =>
    el("div", { class: "person-track" }, el("img", { class: "face", src: face(person), title: person.person_id }),
      spans.map((t) => el("div", {
        class: `span${person.allowlisted ? " allow" : ""}`,
        style: { left: `calc(34px + (100% - 34px) * ${t.start_seconds / duration})`,
          width: `calc((100% - 34px) * ${(t.end_seconds - t.start_seconds) / duration})` },
        title: `${person.person_id}: ${person.gender}${person.age ? `, ${Math.round(person.age)} y` : ""}`,
      }, `${person.person_id} · ${person.gender}`)))));

  $("texts").replaceChildren(...r.ocr_results.map((o) => el("div", { class: "track" },
    el("div", { class: "span text", title: `${o.full_text} [${o.language_code}]`,
      style: { left: pct(o.time_segment.start_seconds), width: wide(o.time_segment.start_seconds, o.time_segment.end_seconds) } },
      `${o.full_text} [${o.language_code}]`))));

  const ticks = [];
  const every = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600].find((s) => duration / s <= 12) || 3600;
  for (let t = 0; t <= duration; t += every) ticks.push(el("span", { style: { left: pct(t) } }, fmt(t)));
  $("axis").replaceChildren(...ticks);
  if (!document.querySelector(".scene.selected") && scenes.length) showScene(job, 0);
}

function overlaps(a, s) { return a.start_seconds < s.end_seconds && a.end_seconds > s.start_seconds; }

async function showScene(job, i, pin = false) {
  const r = job.result, s = r.raw_scenes[i];
  if (!pin && document.querySelector(".scene.selected[data-pinned]")) return;
  document.querySelectorAll(".scene").forEach((n) => {
    n.classList.toggle("selected", Number(n.dataset.scene) === i);
    if (pin) n.toggleAttribute("data-pinned", Number(n.dataset.scene) === i);
  });
  const people = (r.person_constellation_scenes[i] || { person_ids: [] }).person_ids;
  const texts = r.ocr_results.filter((o) => overlaps(o.time_segment, s));
  const tags = r.sections.filter((x) => x.time_segments.some((t) => overlaps(t, s)));
  const key = await imageUrl(`${api}/keyframe?t=${(s.start_seconds + s.end_seconds) / 2}`);
  $("details").replaceChildren(
    el("div", {}, key ? el("img", { class: "key", src: key, alt: `scene ${i + 1}` }) : null),
    el("div", {},
      el("h3", {}, `Scene ${i + 1} · ${fmt(s.start_seconds)} – ${fmt(s.end_seconds)}`),
      el("div", { class: "chips" }, tags.map((t) => el("span", { class: `chip${t.is_critical ? " critical" : ""}` },
        `${t.section_tag} ${Math.round(t.confidence * 100)}%`))),
      el("div", { class: "people" }, people.length ? people.map(personChip) : el("span", { class: "muted" }, "nobody")),
      texts.length ? el("ul", {}, texts.map((t) => el("li", {}, `${t.full_text} `, el("span", { class: "muted" }, `[${t.language_code}]`))))
        : el("p", { class: "muted" }, "no on-screen text")));
}

function renderImages(job) {
  $("images").hidden = false;
  $("grid").replaceChildren(...job.items.map((item, i) => {
    const img = el("img", { class: "thumb", alt: item.external_id, hidden: "" });
    const placeholder = el("div", { class: "thumb none" }, item.status === "failed" ? "no preview" : "");
    imageUrl(`${api}/items/${i}/thumbnail`).then((u) => {
      if (u) { img.src = u; img.hidden = false; placeholder.remove(); }
    });
    const r = item.result;
    return el("div", { class: `card ${item.status}` }, img, placeholder, el("div", { class: "body" },
      el("h4", {}, item.external_id, " ", el("span", { class: `badge ${item.status}` }, item.status)),
      item.error ? el("div", { class: "reason" }, `${item.error.code}: ${item.error.message}`) : null,
      r ? el("div", { class: "chips" }, r.tags.map((t) => el("span", { class: `chip${t.is_critical ? " critical" : ""}` },
        `${t.tag} ${Math.round(t.probability * 100)}%`))) : null,
      r && r.person_ids.length ? el("div", { class: "people" }, r.person_ids.map(personChip)) : null,
      r && r.ocr_results.length ? el("div", {}, r.ocr_results.map((o) => el("div", {}, `“${o.full_text}” `,
        el("span", { class: "muted" }, `[${o.language_code}]`)))) : null));
  }));
}

async function refresh() {
  try {
    const job = await (await get(api)).json();
    $("key-form").hidden = true;
    showStatus(job);
    if (kind === "videos") renderVideo(job); else renderImages(job);
    if (job.status !== "finished" && job.status !== "failed") setTimeout(refresh, 1000);
  } catch (err) {
    if (err.status === 401) { $("key-form").hidden = false; return; }
    $("error").hidden = false;
    $("error").textContent = err.status === 404 ? `No job ${jobId}.` : `Could not load the job: ${err.message}`;
    if (err.status !== 404) setTimeout(refresh, 3000);
  }
}

$("key-form").querySelector("form").addEventListener("submit", (e) => {
  e.preventDefault();
  sessionStorage.setItem("framewise-key", $("key").value);
  imageUrls.clear();
  refresh();
});
refresh();
