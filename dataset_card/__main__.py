"""``python -m dataset_card {build,validate,publish,explore}``: assemble, check, publish and explore IMEMNet-C."""
from __future__ import annotations

import argparse
import logging
import sys

from dataset_card.build import BuildError, build
from dataset_card.explore import ExploreError, explore
from dataset_card.licences import LicenceError
from dataset_card.publish import TokenError, publish
from dataset_card.validate import ValidationError, validate
from captioner.cores import usable_cores


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m dataset_card", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="write a Hugging Face dataset folder (shards, card, plots) from a run")
    b.add_argument("run_dir", help="output folder of `python -m pipeline.run` (holds data/, run.json)")
    b.add_argument("--out", default=None, help="where to write the dataset folder (default: RUN_DIR/hub)")
    b.add_argument("--metadata-only", action="store_true",
                   help="leave out the audio/image columns (for sources whose licences forbid redistribution)")
    v = sub.add_parser("validate", help="check a built dataset folder against the data contract")
    v.add_argument("dir", help="a folder written by `build`")
    u = sub.add_parser("publish", help="build if needed, validate, and upload to the Hugging Face Hub")
    u.add_argument("path", help="a run folder (built into PATH/hub first) or a built dataset folder")
    u.add_argument("--repo-id", required=True, help="dataset repository, e.g. mmva/imemnet-c")
    u.add_argument("--private", action="store_true", help="create the repository as private")
    u.add_argument("--revision", default=None, help="branch to commit to (created if missing; default main)")
    u.add_argument("--token-from-env", action="store_true",
                   help="take the token only from HF_TOKEN (default: HF_TOKEN or the saved `hf auth login`)")
    u.add_argument("--metadata-only", action="store_true",
                   help="when building from a run: metadata-only build (no audio/images, so any source may go public)")
    u.add_argument("--redistribute", action="append", default=[], metavar="SOURCE",
                   help="publish the media of SOURCE (a `source` value, e.g. manifest) to a public repository "
                        "although its terms are unknown or forbid it: you hold the rights (repeatable)")
    e = sub.add_parser("explore", help="write a static offline page to look at and listen to a run or dataset")
    e.add_argument("path", help="a run folder (python -m pipeline.run --output) or a built dataset folder")
    e.add_argument("--out", default=None,
                   help="folder for index.html and its media/ (default: PATH/explore for a run, "
                        "a sibling PATH-explore for a dataset folder)")
    e.add_argument("--sample", type=int, default=None, metavar="N",
                   help="show N random clips (and up to N images, their paired ones first), with only "
                        "their media: a small folder to copy elsewhere")
    e.add_argument("--seed", type=int, default=0, help="seed of --sample's draw (default 0)")
    e.add_argument("--jobs", type=int, default=usable_cores(), metavar="N",
                   help="processes encoding the audio previews (default: every core this process may use)")
    e.add_argument("--no-media", dest="media", action="store_false",
                   help="write no previews: a quick page of VA, captions, pairs and failures that plays nothing "
                        "(a full page otherwise writes one small Opus preview per song, which each of its clips "
                        "plays its window of, and image thumbnails, under OUT/media)")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand; returns the exit status (non-zero with a message on any failure)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "build":
            r = build(args.run_dir, args.out, metadata_only=args.metadata_only)
            print(r.validation.render())
            print(f"built {r.out_dir} ({len(r.files)} files): " +
                  "; ".join(f"{t} {sum(s.values())} rows" for t, s in r.rows.items()) +
                  "; shards " + ", ".join(f"{n} {how}" for how, n in sorted(r.placed.items())))
        elif args.command == "validate":
            report = validate(args.dir)
            print(report.render())
            return 0 if report.ok else 1
        elif args.command == "explore":
            r = explore(args.path, args.out, sample=args.sample, seed=args.seed, media=args.media, jobs=args.jobs)
            m = r.media
            print(f"wrote {r.page} ({r.page_bytes / 1e6:.1f} MB): {r.clips} clips, {r.images} images, "
                  f"{r.failures} failures; media {m.written} written, {m.reused} reused, {m.removed} removed "
                  f"({m.bytes / 1e6:.1f} MB of previews for {m.source_bytes / 1e6:.1f} MB of media)"
                  + ("" if r.flags_available else "; caption flags unavailable (captioner.audit missing)")
                  + f" in {r.seconds:.1f} s")
        else:
            r = publish(args.path, args.repo_id, private=args.private, revision=args.revision,
                        token_from_env=args.token_from_env, metadata_only=args.metadata_only,
                        redistribute=args.redistribute)
            print(f"{r.repo_id}@{r.revision}: " + (f"commit {r.commit}, {len(r.uploaded)} files uploaded, "
                  f"{len(r.deleted)} removed" if r.commit else f"unchanged ({len(r.unchanged)} files), no commit"))
    except ValidationError as e:
        print(f"validation failed:\n{e}", file=sys.stderr)
        return 1
    except (BuildError, TokenError, ExploreError, LicenceError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
