"""MMVA zero-shot tasks: text -> music retrieval, image -> music prompts (and MusicGen audio),
video summarisation by VA. Each is a function here and a subcommand of
``python -m mmva_model.zeroshot``."""
from mmva_model.zeroshot.errors import ZeroShotError
from mmva_model.zeroshot.image2music import Image2MusicReport, Image2MusicResult, image2music
from mmva_model.zeroshot.library import LibraryFailure, LibraryInfo, LibraryOptions, MusicLibrary, load_library
from mmva_model.zeroshot.prompts import Prompt, build_prompt
from mmva_model.zeroshot.retrieval import ClipMatch, rank_clips
from mmva_model.zeroshot.segments import Segment, make_segments, select_segments
from mmva_model.zeroshot.text2music import Text2MusicResult, text2music
from mmva_model.zeroshot.video import VideoSummary, summarise_video

__all__ = [
    "ClipMatch", "Image2MusicReport", "Image2MusicResult", "LibraryFailure", "LibraryInfo", "LibraryOptions",
    "MusicLibrary", "Prompt", "Segment", "Text2MusicResult", "VideoSummary", "ZeroShotError", "build_prompt",
    "image2music", "load_library", "make_segments", "rank_clips", "select_segments", "summarise_video",
    "text2music",
]
