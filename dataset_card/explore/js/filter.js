// Recompute which clips (and images) pass the filters; the plane and the table share the views.
const d = clips.data;
const n = d.clip_id.length;
const wantSplit = split.value, wantQuadrant = quadrant.value;
const wantCaptioner = captioner.value === "" ? null : captioners[Number(captioner.value)];
const wantFlags = flags.active.map((i) => flag_columns[i]);
const term = (search.value_input || search.value || "").trim().toLowerCase();
const keep = new Array(n);
let shown = 0;
for (let i = 0; i < n; i++) {
  let ok = (wantSplit === "" || d.split[i] === wantSplit)
    && (wantQuadrant === "" || d.quadrant[i] === wantQuadrant)
    && (wantCaptioner === null || d.captioner[i] === wantCaptioner);
  if (ok && wantFlags.length) ok = wantFlags.some((f) => d[f][i]);
  if (ok && term) ok = String(d.caption[i] || "").toLowerCase().includes(term);
  keep[i] = ok;
  if (ok) shown++;
}
clip_filter.booleans = keep;
const im = images.data;
image_filter.booleans = im.image_id.map((_, i) => wantSplit === "" || im.split[i] === wantSplit);
count.text = `<b>${shown}</b> of ${n} clips shown`;
