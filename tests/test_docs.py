"""The documentation cannot drift from the code.

Every command shown in README.md and docs/*.md is parsed; each flag it uses must exist in that
command's ``--help`` (Beam's own options for the pipeline, Accelerate's for ``accelerate
launch``), every ``make`` target must exist, and every ``--flag`` named in the prose must belong to
one of the project's commands. The pages must not name machine-specific paths.
"""
from __future__ import annotations

import functools
import re
import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# Flags of other programs that the pages mention in passing (pip, yt-dlp, Chromium, TensorBoard).
FOREIGN_FLAGS = {"--logdir", "--no-deps", "--enable-file-urls", "--headless", "--no-sandbox", "--upgrade"}
FENCE = re.compile(r"^```(\w*)\s*$")
FLAG = re.compile(r"(?<![\w-])(--[a-zA-Z][\w-]*)")


@dataclass(frozen=True)
class Command:
    page: str
    line: str
    program: tuple[str, ...]  # what `--help` is asked of, e.g. ("-m", "dataset_card", "build")
    flags: tuple[str, ...]


def _code_lines(text: str) -> list[str]:
    """Shell lines of the fenced blocks that hold commands (continuations joined, prompts cut)."""
    lines, block, lang = [], None, ""
    for raw in text.splitlines():
        m = FENCE.match(raw.strip())
        if m:
            block, lang = (None, "") if block is not None else ([], m.group(1))
            continue
        if block is None or lang not in ("", "bash", "sh", "console", "shell"):
            continue
        line = raw.strip()
        if line.startswith("$ "):
            line = line[2:]
        if lines and lines[-1].endswith("\\"):
            lines[-1] = lines[-1][:-1] + " " + line
        else:
            lines.append(line)
    return lines


def _tokens(line: str) -> list[str]:
    try:
        return shlex.split(line, comments=True)
    except ValueError:  # an unbalanced quote in an example: judge the words before it
        return line.split("#")[0].split()


def _flags(tokens: list[str]) -> tuple[str, ...]:
    return tuple(t.split("=", 1)[0] for t in tokens if t.startswith("--") and len(t) > 2)


def _command(page: str, line: str) -> Command | None:
    """The project command on a shell line, if it is one (``python -m ...``, ``accelerate launch ...``)."""
    tokens = [t for t in _tokens(line) if t not in ("[", "]")]
    tokens = [t.strip("[]") for t in tokens]
    if not tokens:
        return None
    exe = Path(tokens[0]).name
    if exe.startswith("python"):
        rest = tokens[1:]
    elif exe == "accelerate" and tokens[1:2] == ["launch"]:
        rest = tokens[2:]
        while rest and rest[0] != "-m" and not rest[0].endswith(".py"):  # accelerate's own options
            rest = rest[1:]
    else:
        return None
    if rest[:1] == ["-m"] and len(rest) > 1 and _ours(rest[1]):
        program, args = ("-m", rest[1]), rest[2:]
    elif rest and rest[0].endswith(".py") and (ROOT / rest[0]).exists():
        program, args = (rest[0],), rest[1:]
    else:
        return None
    sub = _subcommands(program)
    if args and args[0] in sub:
        program, args = program + (args[0],), args[1:]
    return Command(page, line, program, _flags(args))


def _ours(module: str) -> bool:
    return module.split(".")[0] in ("pipeline", "captioner", "dataset_card", "mmva_model") or module.startswith("tests.benchmarks.")


@functools.lru_cache(maxsize=None)
def _help(program: tuple[str, ...]) -> str:
    out = subprocess.run([sys.executable, *program, "--help"], cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, f"{' '.join(program)} --help failed:\n{out.stderr[-2000:]}"
    return out.stdout


@functools.lru_cache(maxsize=None)
def _subcommands(program: tuple[str, ...]) -> frozenset[str]:
    m = re.search(r"\{([\w,-]+)\}", _help(program))
    return frozenset(m.group(1).split(",")) if m else frozenset()


@functools.lru_cache(maxsize=None)
def _beam_flags() -> frozenset[str]:
    """Every flag of Beam's registered PipelineOptions (the pipeline hands unknown flags to Beam)."""
    import argparse

    import apache_beam.runners.dask.dask_runner  # noqa: F401  (registers DaskOptions)
    from apache_beam.options.pipeline_options import PipelineOptions

    flags, todo = set(), [PipelineOptions]
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        parser = argparse.ArgumentParser(add_help=False, conflict_handler="resolve")
        cls._add_argparse_args(parser)
        flags.update(s for a in parser._actions for s in a.option_strings)
    return frozenset(flags)


@functools.lru_cache(maxsize=None)
def _accelerate_flags() -> frozenset[str]:
    out = subprocess.run([sys.executable, "-m", "accelerate.commands.launch", "--help"],
                         capture_output=True, text=True, timeout=300)
    return frozenset(FLAG.findall(out.stdout))


def _allowed(program: tuple[str, ...]) -> frozenset[str]:
    allowed = set(FLAG.findall(_help(program)))
    if program[:2] == ("-m", "pipeline.run"):
        allowed |= _beam_flags()
    return frozenset(allowed)


def _inline_commands(text: str) -> list[str]:
    """Commands quoted inline in the prose: `python -m mmva_model.ablation --seeds 0 1 2`."""
    return [m for m in re.findall(r"`([^`\n]+)`", text)
            if re.match(r"(?:\S*/)?(?:python3?|accelerate) ", m)]


def _commands() -> list[Command]:
    return [c for page in PAGES
            for line in _code_lines(page.read_text()) + _inline_commands(page.read_text())
            if (c := _command(page.name, line))]


COMMANDS = _commands()


@pytest.fixture(scope="module", autouse=True)
def _warm_help():
    """Ask every program for its help in parallel once (each start imports torch and friends)."""
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(_help, {c.program[:2] if c.program[0] == "-m" else c.program[:1]
                              for c in COMMANDS}))
        list(pool.map(_help, {c.program for c in COMMANDS}))


def test_pages_show_commands():
    assert len(COMMANDS) >= 20, [c.line for c in COMMANDS]
    assert {c.program[:2] for c in COMMANDS} >= {("-m", "pipeline.run"), ("-m", "captioner"),
                                                 ("-m", "dataset_card"), ("-m", "mmva_model.evaluate")}


@pytest.mark.parametrize("cmd", COMMANDS, ids=lambda c: f"{c.page}:{' '.join(c.program)}:{c.line[:40]}")
def test_documented_flags_exist(cmd: Command):
    unknown = sorted(set(cmd.flags) - _allowed(cmd.program))
    assert not unknown, f"{cmd.page}: {' '.join(cmd.program)} has no {unknown} (line: {cmd.line})"


def test_prose_flags_exist():
    """A flag named anywhere in the pages belongs to some command of ours, Beam or Accelerate."""
    known = set(FOREIGN_FLAGS) | _beam_flags() | _accelerate_flags()
    for cmd in COMMANDS:
        known |= _allowed(cmd.program)
    missing = {}
    for page in PAGES:
        for flag in FLAG.findall(page.read_text()):
            base = flag.split("=", 1)[0]
            if base not in known and "--no-" + base[2:] not in known and base.replace("--no-", "--", 1) not in known:
                missing.setdefault(page.name, set()).add(base)
    assert not missing, f"flags no command has: {missing}"


def test_make_targets_exist():
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"(?m)^([\w-]+):", makefile))
    for page in PAGES:
        for line in _code_lines(page.read_text()):
            tokens = _tokens(line)
            if tokens[:1] == ["make"]:
                for target in (t for t in tokens[1:] if "=" not in t and not t.startswith("-")):
                    assert target in targets, f"{page.name}: make {target} (line: {line})"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_no_machine_paths_or_tracker_references(page: Path):
    text = page.read_text()
    for pattern in (r"/work/", r"\.\./shared", r"/root/", r"/home/\w", r"\b[Ii]ssue \d+", r"(?<![\w/])#\d+\b"):
        assert not re.search(pattern, text), f"{page.name} names {pattern!r}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_links_resolve(page: Path):
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
        if "://" not in target:
            assert (page.parent / target).exists(), f"{page.name} links to missing {target}"
