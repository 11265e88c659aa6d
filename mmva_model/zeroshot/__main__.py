"""``python -m mmva_model.zeroshot {text2music,image2music,video}``: MMVA's zero-shot tasks on any
checkpoint and any music library (a pipeline run, a built dataset, a Hub id, a folder of audio)."""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmva_model.checkpoint import CheckpointError
from mmva_model.config import ConfigError
from mmva_model.data import DataError
from mmva_model.encoders.weights import WeightsError
from mmva_model.media import MediaError
from mmva_model.zeroshot import output
from mmva_model.zeroshot.errors import ZeroShotError
from mmva_model.zeroshot.image2music import DEFAULT_OUT, Image2MusicReport, image2music
from mmva_model.zeroshot.library import DEFAULT_CACHE, LibraryOptions, load_library
from mmva_model.zeroshot.musicgen import DEFAULT_MUSICGEN
from mmva_model.zeroshot.predict import resolve_device, resolve_model
from mmva_model.zeroshot.retrieval import RANKINGS
from mmva_model.zeroshot.segments import SELECTORS
from mmva_model.zeroshot.text2music import text2music
from mmva_model.zeroshot.video import check_request, summarise_video
from pipeline.audio import AudioError

# Errors that mean "this input cannot be used": printed as `error: ...`, exit status 2.
USER_ERRORS = (ZeroShotError, DataError, CheckpointError, ConfigError, WeightsError, MediaError, AudioError)


def _common(p: argparse.ArgumentParser, library_required: bool) -> None:
    p.add_argument("--checkpoint", required=True,
                   help="MMVA checkpoint folder (or a training folder: its best/, else last/)")
    p.add_argument("--library", required=library_required, default=None,
                   help="music library: a pipeline run folder, a built dataset folder, a Hugging Face "
                        "dataset id, or a folder of audio files (embedded once, then cached)")
    p.add_argument("--clip_seconds", type=float, default=10.0,
                   help="audio folders: length of the non-overlapping clips files are cut into (default 10)")
    p.add_argument("--cache_dir", default=DEFAULT_CACHE,
                   help=f"where library embeddings are cached (default {DEFAULT_CACHE})")
    p.add_argument("--no_cache", action="store_true", help="embed the library now and cache nothing")
    p.add_argument("--device", default="auto", help="torch device: auto (CUDA when available), cpu, cuda:0...")
    p.add_argument("--batch_size", type=int, default=32, help="items per encoder batch (default 32)")
    p.add_argument("--json", action="store_true", help="print one JSON document instead of tables")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--trust_remote_code", action="store_true",
                   help="run model code shipped with the weights of encoders whose config asks for it "
                        "(MERT in the paper config; Hub ids only at the config's pinned options.revision). "
                        "Off by default: a config or checkpoint alone never runs remote code")


def _ranking(p: argparse.ArgumentParser) -> None:
    p.add_argument("-k", "--k", type=int, default=10, help="clips to list (default 10)")
    p.add_argument("--by", choices=sorted(RANKINGS), default="va",
                   help="rank by distance between predicted VA (va, default) or embedding cosine (embedding)")


def _shared(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments every task function takes, from the common flags; the library is
    loaded here, once, with a progress bar."""
    device = resolve_device(args.device)
    model = resolve_model(args.checkpoint, device, progress=not args.quiet, trust_remote_code=args.trust_remote_code)
    kw = {"library_options": LibraryOptions(clip_seconds=args.clip_seconds),
          "cache_dir": None if args.no_cache else args.cache_dir,
          "batch_size": args.batch_size, "progress": not args.quiet, "device": device}
    library = None
    if args.library is not None:
        library = load_library(args.library, model, options=kw["library_options"], cache_dir=kw["cache_dir"],
                               batch_size=args.batch_size, progress=not args.quiet)
    return {"checkpoint_or_model": model, "library": library, **kw}


# -- text2music

def _text2music_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("text", help='a description of the music, e.g. "a calm, warm piano piece"')
    _ranking(p)
    _common(p, library_required=True)


def _text2music(args: argparse.Namespace):
    return text2music(text=args.text, k=args.k, by=args.by, **_shared(args))


# -- image2music

def _image2music_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files (any format Pillow reads)")
    _ranking(p)
    p.add_argument("--prompt_neighbours", type=int, default=5,
                   help="nearest clips whose descriptors and captions feed the prompt (default 5)")
    p.add_argument("--generate", action="store_true", help="also generate the music with MusicGen")
    p.add_argument("--musicgen_model", default=DEFAULT_MUSICGEN,
                   help=f"MusicGen Hub id or local folder (model + processor; default {DEFAULT_MUSICGEN})")
    p.add_argument("--seconds", type=float, default=8.0, help="length of generated music (default 8)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed for generation (default 0)")
    p.add_argument("--out_dir", default=DEFAULT_OUT, help=f"where generated WAVs go (default {DEFAULT_OUT})")
    _common(p, library_required=True)


def _image2music(args: argparse.Namespace) -> Image2MusicReport:
    shared = _shared(args)
    results = image2music(images=args.images, k=args.k, by=args.by, prompt_neighbours=args.prompt_neighbours,
                          generate=args.generate, musicgen_model=args.musicgen_model, seconds=args.seconds,
                          seed=args.seed, out_dir=args.out_dir, **shared)
    return Image2MusicReport(results, shared["library"].info(), args.musicgen_model if args.generate else None)


# -- video

def _video_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("video", help="a video file (anything ffmpeg reads)")
    p.add_argument("--fps", type=float, default=2.0, help="frames sampled per second (default 2)")
    p.add_argument("--segment_seconds", type=float, default=2.0,
                   help="segment length; rounded to whole frames (default 2)")
    p.add_argument("--budget_seconds", type=float, default=10.0, help="maximum summary length (default 10)")
    p.add_argument("--mode", choices=sorted(SELECTORS), default=None,
                   help="; ".join(f"{k}: {v.description}" for k, v in SELECTORS.items())
                        + " (default: match when a target is given, else arousal)")
    p.add_argument("--target_va", type=float, nargs=2, metavar=("V", "A"), default=None,
                   help="match mode: the VA to match, two numbers in [0, 1]")
    p.add_argument("--match_clip", default=None,
                   help="match mode: a library clip id whose predicted VA is the target (needs --library)")
    p.add_argument("--plot", default=None,
                   help="trajectory PNG path (default: OUT_DIR/<video name>-va.png)")
    p.add_argument("--out_dir", default="runs/zeroshot/video", help="where the default plot goes")
    p.add_argument("--render", default=None, metavar="OUT.mp4", help="write the summary video here (ffmpeg)")
    p.add_argument("--soundtrack", action="store_true",
                   help="with --render: use library music as the audio (--match_clip, else the clip "
                        "nearest the summary's mean VA), looped and trimmed to the summary length")
    _common(p, library_required=False)


def _video(args: argparse.Namespace):
    plot = args.plot or str(Path(args.out_dir) / f"{Path(args.video).stem}-va.png")
    request = dict(fps=args.fps, segment_seconds=args.segment_seconds, budget_seconds=args.budget_seconds,
                   mode=args.mode, target_va=tuple(args.target_va) if args.target_va else None,
                   match_clip=args.match_clip, render=args.render, soundtrack=args.soundtrack)
    check_request(Path(args.video), has_library=args.library is not None, **request)  # before loading anything
    return summarise_video(video=args.video, plot=plot, **request, **_shared(args))


@dataclass(frozen=True)
class Command:
    help: str
    add_args: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], Any]
    render: Callable[[Any], str]


COMMANDS: dict[str, Command] = {
    "text2music": Command("music clips whose VA matches a text", _text2music_args, _text2music,
                          output.render_text2music),
    "image2music": Command("per image: VA, nearest clips and a text-to-music prompt (--generate: audio)",
                           _image2music_args, _image2music, output.render_image2music),
    "video": Command("VA trajectory of a video and a summary of the segments matching a target",
                     _video_args, _video, output.render_video),
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m mmva_model.zeroshot", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    for name, cmd in COMMANDS.items():
        cmd.add_args(sub.add_parser(name, help=cmd.help, description=cmd.help))
    return p


def run(argv: list[str] | None = None) -> Any:
    """Parse ``argv`` and run the subcommand; returns its result object."""
    args = build_parser().parse_args(argv)
    return COMMANDS[args.command].run(args)


def main(argv: list[str] | None = None) -> int:
    """Run and print (tables, or JSON with --json); 2 on unusable input, 1 when no image worked."""
    args = build_parser().parse_args(argv)
    cmd = COMMANDS[args.command]
    try:
        result = cmd.run(args)
    except USER_ERRORS as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(output.to_json(args.command, result) if args.json else cmd.render(result))
    if isinstance(result, Image2MusicReport) and result.failed == len(result.results):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
