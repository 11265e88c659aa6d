"""Model code from the Hub runs only at a pinned commit and with the command's own flag."""
from __future__ import annotations

import pytest

from captioner import job, weights
from captioner.base import CaptionerConfig, build
from pipeline.options import build_parser as pipeline_parser
from pipeline.run import graph_config

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def load_calls(monkeypatch):
    """Record every from_pretrained call of the LLM backends instead of loading."""
    import transformers

    calls: list[tuple[str, str, dict]] = []

    def spy(kind):
        def from_pretrained(name, *args, **kwargs):
            calls.append((kind, name, kwargs))
            raise OSError("spy: nothing loaded")
        return classmethod(lambda cls, name, *a, **k: from_pretrained(name, *a, **k))

    for cls in ("AutoTokenizer", "AutoModelForCausalLM", "AutoProcessor", "AutoConfig"):
        monkeypatch.setattr(getattr(transformers, cls), "from_pretrained", spy(cls))
    return calls


@pytest.mark.parametrize("backend", ["tags-llm", "audio-llm"])
def test_hub_remote_code_without_a_pinned_commit_is_refused_before_loading(backend, load_calls):
    with pytest.raises(weights.RemoteCodeRefused, match=r"40-hex commit.*--revision.*--caption_revision"):
        build(CaptionerConfig(backend, "some-org/some-model", {"trust_remote_code": True}))
    assert load_calls == []


@pytest.mark.parametrize("revision", ["main", "v2", COMMIT[:7], COMMIT.upper()])
def test_branch_tag_or_short_revision_is_refused(revision, load_calls):
    with pytest.raises(weights.RemoteCodeRefused, match="not a 40-hex commit"):
        build(CaptionerConfig("tags-llm", "some-org/some-model", {"trust_remote_code": True, "revision": revision}))
    assert load_calls == []


@pytest.mark.parametrize("backend", ["tags-llm", "audio-llm"])
def test_pinned_commit_and_flag_reach_every_load_call(backend, load_calls):
    with pytest.raises(weights.WeightsMissing, match="cannot load model"):  # the spy loads nothing
        build(CaptionerConfig(backend, "some-org/some-model", {"trust_remote_code": True, "revision": COMMIT}))
    assert load_calls and all(kw["trust_remote_code"] is True and kw["revision"] == COMMIT
                              for _, _, kw in load_calls)


def test_without_the_flag_no_remote_code_runs_even_when_pinned(load_calls):
    with pytest.raises(weights.WeightsMissing):
        build(CaptionerConfig("tags-llm", "some-org/some-model", {"revision": COMMIT}))
    assert load_calls and all(kw["trust_remote_code"] is False and kw["revision"] == COMMIT
                              for _, _, kw in load_calls)


def test_local_model_folder_loads_with_the_flag_and_no_revision(tiny_lm_dir):
    """A folder on this machine is used as it is: nothing to pin, the flag alone allows its code."""
    cap = build(CaptionerConfig("tags-llm", str(tiny_lm_dir), {"trust_remote_code": True, "max_new_tokens": 4}))
    assert cap.model is not None


def test_job_and_pipeline_flags_carry_the_revision():
    extra = job.config_from(job.parse_args(["--input", "x", "--trust_remote_code", "--revision", COMMIT])).extra
    assert (extra["trust_remote_code"], extra["revision"]) == (True, COMMIT)
    opts, _ = pipeline_parser().parse_known_args(["--captioner", "audio-llm", "--caption_trust_remote_code",
                                                  "--caption_revision", COMMIT])
    cfg = graph_config(opts, None).captioner
    assert (cfg.extra["trust_remote_code"], cfg.extra["revision"]) == (True, COMMIT)
