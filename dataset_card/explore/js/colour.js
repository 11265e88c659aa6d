// Colour the points by split or by captioner (the mappers are built in Python).
clip_renderer.glyph.fill_color = mappers[cb_obj.value];
clip_renderer.glyph.line_color = mappers[cb_obj.value];
legend.text = legends[cb_obj.value];
