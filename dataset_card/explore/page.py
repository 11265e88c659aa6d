"""The explorer page: a Bokeh document written as one standalone HTML file (BokehJS inlined).

No server and no network: the page's data sit in the file, media are files under ``media/``
loaded only when played or scrolled into view (see :mod:`dataset_card.explore.media`).
"""
from __future__ import annotations

import html
from dataclasses import dataclass
from importlib import resources

from bokeh.document import Document
from bokeh.embed import file_html
from bokeh.events import DocumentReady
from bokeh.layouts import column, row
from bokeh.models import (BooleanFilter, CategoricalColorMapper, CDSView, CheckboxGroup, ColumnDataSource, CustomJS, DataTable, Div,
                          HTMLTemplateFormatter, NumberFormatter, Scatter, Select, StringFormatter, TableColumn,
                          TabPanel, Tabs, TapTool, TextInput)
from bokeh.plotting import figure
from bokeh.resources import INLINE
from bokeh.core.templates import get_env

from dataset_card import schema
from dataset_card.explore import columns as C
from dataset_card.explore.data import ExploreData
from dataset_card.explore.flags import FLAG_NAMES, ClipFlags
from dataset_card.explore.media import MediaResult

MAX_PAIRS_SHOWN = 12
_CSS = """
#player-bar { position: sticky; top: 0; z-index: 10; background: #f4f4f4; padding: 6px 12px;
  border-bottom: 1px solid #ccc; font: 14px sans-serif; display: flex; gap: 12px; align-items: center; }
#player-bar audio { height: 32px; width: 420px; }
#page-title { font: bold 16px sans-serif; }
"""
_DETAILS_CSS = """
.details { font: 13px sans-serif; max-width: 440px; }
.details .caption { font-style: italic; } .details .flags { color: #b00; }
.details table { border-collapse: collapse; } .details th { text-align: left; padding-right: 8px; font-weight: 600; }
.details .thumbs { display: flex; flex-wrap: wrap; gap: 4px; }
.details figure { margin: 0; font-size: 11px; width: 96px; } .details figure img { width: 96px; height: 72px; object-fit: cover; }
.details img.big { max-width: 420px; max-height: 320px; }
"""
_TEMPLATE = get_env().from_string("""{% extends "file.html.jinja" %}
{% block postamble %}<style>{{ page_css }}</style>{% endblock %}
{% block inner_body %}<div id="player-bar"><span id="page-title">{{ page_title | e }}</span>{{ player_html }}</div>
{{ super() }}{% endblock %}""")


@dataclass(frozen=True)
class PageInputs:
    data: ExploreData
    media: MediaResult
    flags: list[ClipFlags]
    flags_available: bool
    title: str
    media_skipped: bool = False  # --no-media: the folder has media, the page does not play them

    @property
    def plays_audio(self) -> bool:
        return self.data.has_audio and not self.media_skipped

    @property
    def shows_images(self) -> bool:
        return self.data.has_image_pixels and not self.media_skipped


def _js(*names: str) -> str:
    folder = resources.files("dataset_card.explore") / "js"
    return "\n".join((folder / f"{n}.js").read_text(encoding="utf-8") for n in ("common", *names))


def render(p: PageInputs) -> str:
    """The whole page as an HTML string."""
    d = p.data
    captioners = sorted({r.get("captioner") or "" for r in d.clips})
    pair_cols, clip_offsets, image_offsets = C.pair_columns(d.pairs, d.clips, d.images)
    clips = ColumnDataSource(C.clip_columns(d.clips, p.media.urls.get(schema.MUSIC, {}), p.flags, clip_offsets),
                             name="clips")
    images = ColumnDataSource(C.image_columns(d.images, p.media.urls.get(schema.IMAGES, {}), image_offsets),
                              name="images")
    pairs = ColumnDataSource(pair_cols, name="pairs")
    clip_view = CDSView(filter=BooleanFilter(name="clip_filter"))
    image_view = CDSView(filter=BooleanFilter(name="image_filter"))
    details = Div(text=_intro(p), name="details", width=460, stylesheets=[_DETAILS_CSS])
    colours = {"split": C.SPLIT_COLOURS, "captioner": C.captioner_colours(captioners)}
    # colours are mapped in the browser from the split/captioner columns: no colour column per row
    mappers = {k: {"field": k, "transform": CategoricalColorMapper(
        factors=list(c), palette=list(c.values()), nan_color=C.OTHER_COLOUR)} for k, c in colours.items()}
    plane, clip_renderer = _plane(clips, images, clip_view, image_view, mappers["split"])
    colour_by, legend = _colour_control(clip_renderer, colours, mappers)
    filters, count = _filters(p, clips, images, clip_view, image_view, captioners)
    image_details = Div(text="", name="image_details", width=460, stylesheets=[_DETAILS_CSS])
    for source, kind, targets in ((clips, "clip", [details]), (images, "image", [details, image_details])):
        source.selected.js_on_change("indices", CustomJS(code=_js("details"), args=dict(
            kind=kind, clips=clips, images=images, pairs=pairs, targets=targets, max_pairs=MAX_PAIRS_SHOWN,
            descriptor_fields=list(schema.DESCRIPTOR_FIELDS), has_audio=p.plays_audio)))
    plane.select_one(TapTool).callback = CustomJS(args=dict(clips=clips), code=_js("play"))
    explore_tab = column(
        row(plane, column(colour_by, legend, *filters, count), details),
        _clip_table(clips, clip_view, p.plays_audio), sizing_mode="stretch_width")
    tabs = Tabs(tabs=[
        TabPanel(child=explore_tab, title=f"VA plane and clips ({len(d.clips)})"),
        TabPanel(child=row(_image_table(images, image_view, p.shows_images), image_details,
                           sizing_mode="stretch_width"), title=f"images ({len(d.images)})"),
        TabPanel(child=_failure_table(d.failures), title=f"failures ({len(d.failures)})"),
        TabPanel(child=Div(text=_summary_html(p), name="summary"), title="summary"),
    ], name="tabs", sizing_mode="stretch_width")
    doc = Document(title=p.title)
    doc.add_root(tabs)
    doc.js_on_event(DocumentReady, CustomJS(code=_js("ready")))
    return file_html(doc, resources=INLINE, title=p.title, template=_TEMPLATE, template_variables=dict(
        page_css=_CSS, page_title=p.title, player_html=_player_html(p)))


def _colour_control(clip_renderer, colours: dict[str, dict[str, str]], mappers: dict):
    """A 'colour by' select and the legend it switches."""
    legends = {k: _legend(c) for k, c in colours.items()}
    legend = Div(text=legends["split"], name="legend")
    colour_by = Select(title="colour by", value="split", options=list(colours), name="colour_by")
    colour_by.js_on_change("value", CustomJS(args=dict(clip_renderer=clip_renderer, legend=legend, legends=legends,
                                                       mappers=mappers), code=_js("colour")))
    return colour_by, legend


def _plane(clips, images, clip_view, image_view, colour):
    """VA plane: clips as circles, images as squares; a tap selects (and plays a clip)."""
    plane = figure(title="valence / arousal", x_range=(-0.02, 1.02), y_range=(-0.02, 1.02), width=560,
                   height=520, x_axis_label="valence", y_axis_label="arousal", name="plane",
                   tools="pan,wheel_zoom,box_zoom,reset,tap", output_backend="webgl")
    image_renderer = plane.scatter("valence", "arousal", source=images, view=image_view, marker="square",
                                   size=5, fill_color="#999999", line_color=None, fill_alpha=0.35,
                                   legend_label="images", name="image_points")
    clip_renderer = plane.scatter("valence", "arousal", source=clips, view=clip_view, size=6,
                                  fill_color=colour, line_color=colour,
                                  fill_alpha=0.6, legend_label="clips", name="clip_points")
    clip_renderer.selection_glyph = Scatter(size=12, fill_color=colour, line_color="black", line_width=2)
    clip_renderer.nonselection_glyph.fill_alpha = 0.3  # the other clips stay visible around a selected one
    clip_renderer.nonselection_glyph.line_alpha = 0.3
    plane.legend.click_policy = "hide"
    plane.legend.location = "top_left"
    plane.select_one(TapTool).renderers = [clip_renderer, image_renderer]
    return plane, clip_renderer


def _filters(p: PageInputs, clips, images, clip_view, image_view, captioners: list[str]):
    split = Select(title="split", value="", name="split_filter",
                   options=[("", "all splits")] + [(s, s) for s in schema.SPLITS])
    quadrant = Select(title="VA quadrant", value="", name="quadrant_filter",
                      options=[("", "all quadrants")] + list(C.QUADRANTS.items()), width=280)
    captioner = Select(title="captioner", value="", name="captioner_filter",
                       options=[("", "all captioners")] + [(str(i), c or "(none)") for i, c in enumerate(captioners)])
    flag_note = "" if p.flags_available else " (caption audit not installed: no clip is flagged)"
    flags = CheckboxGroup(labels=list(FLAG_NAMES.values()), active=[], name="flag_filter")
    search = TextInput(title="search captions", placeholder="words in the caption", name="search")
    count = Div(text=f"<b>{len(p.data.clips)}</b> of {len(p.data.clips)} clips shown", name="count")
    callback = CustomJS(code=_js("filter"), args=dict(
        clips=clips, images=images, clip_filter=clip_view.filter, image_filter=image_view.filter, split=split,
        quadrant=quadrant, captioner=captioner, flags=flags, search=search, count=count,
        captioners=captioners, flag_columns=list(FLAG_NAMES)))
    for w in (split, quadrant, captioner):
        w.js_on_change("value", callback)
    flags.js_on_change("active", callback)
    search.js_on_change("value_input", callback)
    search.js_on_change("value", callback)
    return [split, quadrant, captioner, Div(text=f"caption-report flags (any of){html.escape(flag_note)}"),
            flags, search], count


def _clip_table(clips, view, has_audio: bool) -> DataTable:
    cols = []
    if has_audio:
        # Only the rows in view exist in the DOM (the grid is virtual), and preload="none":
        # a 26k-clip table holds a few dozen players and fetches a clip only when played.
        cols.append(TableColumn(field="audio_url", title="audio", width=230, sortable=False,
                                formatter=HTMLTemplateFormatter(template=(
                                    '<% if (value) { %><audio controls preload="none" style="height:28px;width:220px"'
                                    ' src="<%- value %>"></audio><% } else { %>no audio<% } %>'))))
    text = StringFormatter()
    cols += [TableColumn(field="clip_id", title="clip", width=90, formatter=text),
             TableColumn(field="split", title="split", width=70, formatter=text),
             TableColumn(field="valence", title="valence", width=60, formatter=NumberFormatter(format="0.000")),
             TableColumn(field="arousal", title="arousal", width=60, formatter=NumberFormatter(format="0.000")),
             TableColumn(field="quadrant", title="quadrant", width=60, formatter=text),
             TableColumn(field="captioner", title="captioner", width=160, formatter=text),
             TableColumn(field="flags", title="flags", width=150, formatter=text),
             TableColumn(field="caption", title="caption", width=600, formatter=text)]
    return DataTable(source=clips, view=view, columns=cols, row_height=34 if has_audio else 25, height=420,
                     index_position=None, sizing_mode="stretch_width", name="clip_table", reorderable=False)


def _image_table(images, view, has_pixels: bool) -> DataTable:
    cols = []
    if has_pixels:
        cols.append(TableColumn(field="image_url", title="image", width=100, sortable=False,
                                formatter=HTMLTemplateFormatter(template=(
                                    '<% if (value) { %><img loading="lazy" style="height:60px" src="<%- value %>">'
                                    '<% } %>'))))
    text = StringFormatter()
    cols += [TableColumn(field="image_id", title="image", width=200, formatter=text),
             TableColumn(field="valence", title="valence \u25b2", width=80, formatter=NumberFormatter(format="0.000")),
             TableColumn(field="arousal", title="arousal", width=80, formatter=NumberFormatter(format="0.000")),
             TableColumn(field="split", title="split", width=80, formatter=text),
             TableColumn(field="source", title="source", width=120, formatter=text),
             TableColumn(field="pair_count", title="paired clips", width=80)]
    note = Div(text="Images ordered by valence; click the arousal header to order them by arousal. "
                    "Select a row to see the image and its paired clips in the plane tab's details."
               + ("" if has_pixels else " <b>No image pixels on this page (metadata-only folder, or --no-media).</b>"))
    table = DataTable(source=images, view=view, columns=cols, row_height=64 if has_pixels else 25, height=600,
                      index_position=None, sizing_mode="stretch_width", name="image_table",
                      sortable=True, reorderable=False)
    return column(note, table, sizing_mode="stretch_width")


def _failure_table(failures: list[dict]):
    if not failures:
        return Div(text="No failures recorded in this folder.", name="failures")
    text = StringFormatter()
    widths = {"item_id": 160, "kind": 60, "stage": 90, "error_type": 160, "message": 600, "attempts": 60}
    cols = [TableColumn(field=f.name, title=f.name, width=widths.get(f.name, 100), formatter=text)
            for f in schema.FAILURE_SCHEMA]
    return DataTable(source=ColumnDataSource(C.failure_columns(failures), name="failure_rows"), columns=cols,
                     height=500, index_position=None, sizing_mode="stretch_width", name="failure_table",
                     reorderable=False)


def _legend(colours: dict[str, str]) -> str:
    return " ".join(f'<span style="color:{c}">\u25cf</span> {html.escape(k or "(none)")}' for k, c in colours.items())


def _player_html(p: PageInputs) -> str:
    if p.media_skipped and p.data.has_audio:
        return ('<span id="no-audio">Written with --no-media: this page plays no audio '
                '(rerun without it, or with --sample N for a small playable export).</span>')
    if not p.data.has_audio:
        return ('<span id="no-audio">This folder is metadata-only: its music table holds no audio, '
                'so there is nothing to play.</span>')
    return '<audio id="player" controls preload="none"></audio><span id="now-playing">click a clip to play it</span>'


def _intro(p: PageInputs) -> str:
    if not p.data.clips and not p.data.images:
        return "<p>This folder has no clips and no images: see the failures and summary tabs.</p>"
    return "<p>Click a point on the plane or a row of the table: the clip plays, its caption, descriptors, " \
           "VA, ids and paired images show here.</p>"


def _summary_html(p: PageInputs) -> str:
    """Counts, media, failures by reason and the run's options/versions, all escaped."""
    d, e = p.data, html.escape
    rows = [("folder", e(d.root.name)), ("kind", e(d.kind)), ("audio", "yes" if d.has_audio else "no (metadata-only)"),
            ("image pixels", "yes" if d.has_image_pixels else "no (metadata-only)")]
    if d.sampled_from:
        rows.append(("sample", e(", ".join(f"{len(getattr(d, a))} of {d.sampled_from[t]} {t}"
                                          for t, a in ((schema.MUSIC, "clips"), (schema.IMAGES, "images"))))))
    for table in schema.TABLES:
        splits = d.rows.get(table, {})
        rows.append((f"{table} rows", e(", ".join(f"{s} {splits.get(s, 0)}" for s in schema.SPLITS))))
    share = f" ({100 * p.media.bytes / p.media.source_bytes:.1f} % of the {p.media.source_bytes / 1e6:.1f} MB " \
            "they preview)" if p.media.source_bytes else ""
    rows.append(("media on the page", f"{p.media.written} written, {p.media.reused} reused, "
                                      f"{p.media.bytes / 1e6:.1f} MB of previews under media/{share}"))
    rows += [(f"missing {t} media", str(n)) for t, n in p.media.missing.items()]
    reasons: dict[str, int] = {}
    for f in d.failures:
        key = f"{f.get('kind')}/{f.get('stage')}/{f.get('error_type')}"
        reasons[key] = reasons.get(key, 0) + 1
    rows += [(f"failures: {e(k)}", str(n)) for k, n in sorted(reasons.items())]
    rows += [(f"run: {e(str(k))}", e(_short(v))) for k, v in d.run.items() if not isinstance(v, (dict, list))]
    for section in ("options", "versions"):
        rows += [(f"{section}: {e(str(k))}", e(_short(v))) for k, v in (d.run.get(section) or {}).items()]
    body = "".join(f"<tr><th style='text-align:left;padding-right:12px'>{k}</th><td>{v}</td></tr>" for k, v in rows)
    return f"<table style='font:13px sans-serif'>{body}</table>"


def _short(v, limit: int = 200) -> str:
    s = str(v)
    return s if len(s) <= limit else s[:limit] + "\u2026"
