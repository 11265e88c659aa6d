// Show the selected clip or image (caption, descriptors, VA, ids, pairs) and load its clip.
const i = cb_obj.indices[0];
if (i == null) return;
const player = document.getElementById("player");
const nowPlaying = document.getElementById("now-playing");
if (kind === "clip") {
  const d = clips.data;
  const flags = [];
  if (d.flag_repeated[i]) flags.push("repeated phrase or fact");
  if (d.flag_contradiction[i]) flags.push("contradiction");
  if (d.flag_grounding[i]) flags.push("grounding failure: " + d.grounding[i]);
  const desc = descriptor_fields.map((f) => {
    const v = d["d_" + f][i];
    return [f, typeof v === "number" ? esc(num(v, 2)) : esc(v || "\u2014")];
  });
  const start = d.pair_start[i], stop = start + d.pair_count[i];
  const thumbs = [];
  for (let k = start; k < Math.min(stop, start + max_pairs); k++) {
    const j = pairs.data.image_idx[k];
    const url = images.data.image_url[j];
    const img = url ? `<img src="${esc(url)}" loading="lazy" alt="">` : "";
    thumbs.push(`<figure>${img}<figcaption>${esc(images.data.image_id[j])}<br>score ${num(pairs.data.score[k], 3)}</figcaption></figure>`);
  }
  const more = stop - start > max_pairs ? `<p>\u2026 and ${stop - start - max_pairs} more pairs</p>` : "";
  const html = `<div class="details"><h3>clip ${esc(d.clip_id[i])}</h3>`
    + `<p class="caption">${d.caption[i] ? esc(d.caption[i]) : "<i>no caption</i>"}</p>`
    + (flags.length ? `<p class="flags">flags: ${esc(flags.join("; "))}</p>` : "")
    + `<table>${rowsHtml([
      ["valence", `${num(d.valence[i], 3)} \u00b1 ${num(d.valence_std[i], 3)}`],
      ["arousal", `${num(d.arousal[i], 3)} \u00b1 ${num(d.arousal_std[i], 3)}`],
      ["song", esc(d.song_id[i])], ["split", esc(d.split[i])], ["source", esc(d.source[i])],
      ["span", `${num(d.start_s[i], 1)}\u2013${num(d.end_s[i], 1)} s`],
      ["captioner", esc(d.captioner[i])], ["license", esc(d.license[i])]])}</table>`
    + `<h4>descriptors</h4><table>${rowsHtml(desc)}</table>`
    + `<h4>paired images (${stop - start})</h4><div class="thumbs">${thumbs.join("") || "none"}</div>${more}</div>`;
  for (const t of targets) t.text = html;
  if (player && d.audio_url[i]) {
    player.preload = "auto";
    player.src = d.audio_url[i];
    nowPlaying.textContent = "clip " + d.clip_id[i];
  } else if (nowPlaying) {
    nowPlaying.textContent = has_audio ? "clip " + d.clip_id[i] + ": no audio stored" : nowPlaying.textContent;
  }
} else {
  const d = images.data;
  const start = d.pair_start[i], stop = start + d.pair_count[i];
  const clipsOf = [];
  for (let k = start; k < Math.min(stop, start + max_pairs); k++) {
    const p = pairs.data.by_image[k];
    clipsOf.push(`${esc(clips.data.clip_id[pairs.data.clip_idx[p]])} (${num(pairs.data.score[p], 3)})`);
  }
  const img = d.image_url[i] ? `<img class="big" src="${esc(d.image_url[i])}" alt="">` : "<p><i>no pixels stored</i></p>";
  const html = `<div class="details"><h3>image ${esc(d.image_id[i])}</h3>${img}<table>${rowsHtml([
      ["valence", num(d.valence[i], 3)], ["arousal", num(d.arousal[i], 3)], ["split", esc(d.split[i])],
      ["source", esc(d.source[i])]])}</table>`
    + `<h4>paired clips (${stop - start})</h4><p>${clipsOf.join(", ") || "none"}</p></div>`;
  for (const t of targets) t.text = html;
}
