// Colour the points by split or by captioner (colours precomputed per row in Python).
clip_renderer.glyph.fill_color = {field: "color_" + cb_obj.value};
clip_renderer.glyph.line_color = {field: "color_" + cb_obj.value};
legend.text = legends[cb_obj.value];
