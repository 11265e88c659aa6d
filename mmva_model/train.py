"""Train MMVA on IMEMNet-C with Accelerate.

    accelerate launch mmva_model/train.py                      # `offline` config on runs/demo
    accelerate launch mmva_model/train.py --config paper --data mmva/imemnet-c --name paper
    python mmva_model/train.py --set loss.similarity=contrastive --name contrastive

Each step draws clips (with their captions) and images independently ("random VA matching",
mmva_model.sampler), scores every cross-modal pair of the batch from VA and minimises
per-modality VA MSE + lambda x similarity loss (mmva_model.losses). Frozen backbones run once
over the data and are cached (mmva_model.features). Writes ``runs/<name>/train/``:
``checkpoints/step-N`` (Accelerate state, for --resume), ``best/`` and ``last/`` (model
checkpoints for evaluate/zero-shot), ``metrics.jsonl``, ``train.json``, TensorBoard ``logs/``.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import ProjectConfiguration, set_seed
from tqdm.auto import tqdm

from mmva_model.checkpoint import remove, save_checkpoint
from mmva_model.config import ConfigError, MMVAConfig, load_config, shipped_configs
from mmva_model.data import DEFAULT_DATA, DataError, SplitData, load_split
from mmva_model.encoders.weights import remote_code_allowed
from mmva_model.evaluation import jsonable, predict_split, score, selection_score
from mmva_model.features import DEFAULT_CACHE, CachedStream, LiveStream, build_split_cache, table_encoders
from mmva_model.losses import mmva_loss
from mmva_model.model import MMVA
from mmva_model.progress import hf_progress
from mmva_model.sampler import StepSampler
from mmva_model.threads import apply_threads, available_cores, choose_threads, local_processes, physical_cores

CHECKPOINTS = "checkpoints"
RUN_FILES = (CHECKPOINTS, "best", "last", "logs", "metrics.jsonl", "train.json")


class RunFolderError(ValueError):
    """An output folder that already holds a run, without --resume or --overwrite."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mmva_model/train.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="offline",
                   help=f"shipped config name ({', '.join(shipped_configs())}), a YAML file, or a "
                        "checkpoint folder (default: offline)")
    p.add_argument("--data", default=DEFAULT_DATA,
                   help="IMEMNet-C: a pipeline run folder, a built dataset folder or a Hub id (default: runs/demo)")
    p.add_argument("--name", default=None, help="run name: writes runs/<name>/train/ (default: the config's name)")
    p.add_argument("--output_dir", default=None, help="write here instead of runs/<name>/train/")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set train.steps=100 --set loss.similarity=contrastive")
    p.add_argument("--resume", action="store_true",
                   help="continue from the latest checkpoint in the output folder (its config is used)")
    p.add_argument("--overwrite", action="store_true",
                   help="start afresh in an output folder that already holds a run (its checkpoints, "
                        "best/, last/ and logs are deleted)")
    p.add_argument("--stop_after", type=int, default=None, metavar="N",
                   help="stop after N optimizer steps in this invocation (time-boxed jobs; resume later)")
    p.add_argument("--cache_dir", default=DEFAULT_CACHE, help=f"frozen-feature cache (default: {DEFAULT_CACHE})")
    p.add_argument("--hf_cache_dir", default=None,
                   help="datasets cache for the Arrow copy of a Hub dataset's tables (a local folder is read "
                        "in place, with no copy)")
    p.add_argument("--log_every", type=int, default=10, help="steps between loss logs (default: 10)")
    p.add_argument("--cpu", action="store_true", help="train on the CPU even when a GPU is present")
    p.add_argument("--threads", type=int, default=0, metavar="N",
                   help="torch CPU threads of this process (default 0: its share of the cores it may run "
                        "on, or OMP_NUM_THREADS when the user set it; accelerate launch's own default "
                        "OMP_NUM_THREADS=1 is not taken as the user's)")
    p.add_argument("--cache_workers", type=int, default=None, metavar="N",
                   help="processes that compute the frozen features (default: the threads of this process; "
                        "0 computes them in this process)")
    p.add_argument("--no_progress", action="store_true", help="no progress bar")
    p.add_argument("--trust_remote_code", action="store_true",
                   help="run model code shipped with the weights of encoders whose config asks for it "
                        "(MERT in the paper config; Hub ids only at the config's pinned options.revision). "
                        "Off by default: a config or checkpoint alone never runs remote code")
    return p


@dataclass
class TrainResult:
    output_dir: Path
    step: int
    best_step: int | None
    best_score: float | None
    stopped_early: bool
    validation: dict = field(default_factory=dict)  # scores of the best checkpoint
    data_wait_share: float = 0.0  # share of training-step time spent waiting for batches
    steps_per_second: float = 0.0  # optimizer steps per second of step time (no validation/saving)
    world_size: int = 1
    threads: int = 0  # torch CPU threads this process trained with
    dropped_pairs: dict = field(default_factory=dict)  # train pairs left out (train.matching=fixed), by reason


@dataclass
class TrainerState:
    """Progress that checkpoints carry besides weights/optimizer/RNG (Accelerate custom state)."""

    step: int = 0
    best_score: float = -math.inf
    best_step: int | None = None
    bad_evals: int = 0

    def state_dict(self) -> dict:
        return asdict(self)

    def load_state_dict(self, state: dict) -> None:
        for k, v in state.items():
            setattr(self, k, v)


def _mixed_precision(setting: str, cpu: bool) -> str:
    """``auto``: bf16 on a CUDA device that has it, otherwise full precision."""
    if setting != "auto":
        return setting
    return "bf16" if (not cpu and torch.cuda.is_available() and torch.cuda.is_bf16_supported()) else "no"


def _schedule(cfg: MMVAConfig):
    """Linear warm-up then cosine decay to 0 over ``train.steps`` optimizer steps."""
    warm, total = cfg.train.warmup_steps, cfg.train.steps

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        progress = (step - warm) / max(1, total - warm)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


def _output_dir(args: argparse.Namespace, cfg_name: str) -> Path:
    if args.output_dir:
        return Path(args.output_dir)
    return Path("runs") / (args.name or cfg_name) / "train"


def _latest_checkpoint(out: Path) -> Path | None:
    steps = sorted((out / CHECKPOINTS).glob("step-*"))
    return steps[-1] if steps else None


def _load_config(args: argparse.Namespace) -> tuple[MMVAConfig, Path]:
    """The config to train: from the output folder when resuming, else --config + --set."""
    cfg = load_config(args.config, args.overrides)
    out = _output_dir(args, cfg.name)
    if args.resume and (out / "config.yaml").is_file():
        cfg = load_config(out / "config.yaml", args.overrides)
    return cfg, out


class Trainer:
    """One training run; ``fit()`` runs the loop. Kept as an object so tests can step it."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.cfg, self.out = _load_config(args)
        t = self.cfg.train
        self.accelerator = Accelerator(
            cpu=args.cpu or not torch.cuda.is_available(),
            mixed_precision=_mixed_precision(t.mixed_precision, args.cpu),
            gradient_accumulation_steps=t.grad_accum,
            step_scheduler_with_optimizer=False,  # one scheduler step per optimizer step, any world size
            log_with="tensorboard",
            project_config=ProjectConfiguration(project_dir=str(self.out), logging_dir=str(self.out / "logs")),
        )
        self.threads = self._set_threads()
        set_seed(t.seed)
        self.state = TrainerState()
        self._load_data()
        with remote_code_allowed(args.trust_remote_code):
            self.model = MMVA(self.cfg)
        self.model.encoder("music").fit_normalisation(self._train_descriptors())
        self._build_caches()
        self.optimizer = torch.optim.AdamW(self.model.parameter_groups(t.lr, t.backbone_lr, t.weight_decay))
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, _schedule(self.cfg))
        self.model, self.optimizer, self.scheduler = self.accelerator.prepare(
            self.model, self.optimizer, self.scheduler)
        self.accelerator.register_for_checkpointing(self.state)

    # -- set-up
    def _set_threads(self) -> int:
        """Every core this process was given (its share when several processes run here)."""
        choice = choose_threads(os.environ, cores=available_cores(), physical=physical_cores(),
                                local=local_processes(os.environ, self.accelerator.num_processes),
                                requested=self.args.threads)
        threads = apply_threads(choice)
        if self.accelerator.device.type == "cpu":
            _info(self.accelerator, f"training with {threads} CPU threads per process ({choice.reason})")
        return threads

    def _load_data(self) -> None:
        a = self.args
        with self.accelerator.main_process_first():  # one process converts the tables to Arrow
            self.train_data = load_split(a.data, "train", a.hf_cache_dir, with_pairs=self.cfg.train.matching == "fixed")
            self.val_data = load_split(a.data, "validation", a.hf_cache_dir)
        dev = self.accelerator.device
        self.train_va = {"music": torch.tensor(self.train_data.music.va, device=dev),
                         "images": torch.tensor(self.train_data.images.va, device=dev)}
        if self.train_data.dropped_pairs:
            _info(self.accelerator, self.train_data.dropped_message())
        if self.cfg.train.matching == "fixed" and not len(self.train_data.pairs):
            raise DataError(f"{a.data}: train.matching=fixed needs pairs in the train split; the pairs table has none")

    def _train_descriptors(self) -> list[dict]:
        ds = self.train_data.music.dataset
        return [{"descriptors": d} for d in ds.select_columns(["descriptors"])["descriptors"]]

    def _build_caches(self) -> None:
        self.cached: dict[str, dict] = {"train": {}, "validation": {}}
        if not self.cfg.train.cache_features:
            return
        workers = self.threads if self.args.cache_workers is None else self.args.cache_workers
        device = self.accelerator.device
        self.model.to(device)  # frozen backbones run where training does (accelerate.prepare would move them)
        with self.accelerator.main_process_first():  # the main process computes, the others read
            for name, data in (("train", self.train_data), ("validation", self.val_data)):
                self.cached[name] = build_split_cache(
                    self.model, data, cache_dir=self.args.cache_dir, workers=workers, device=device,
                    progress=self._show_progress())

    def _show_progress(self) -> bool:
        return self.accelerator.is_main_process and not self.args.no_progress

    # -- batches
    def _streams(self, start_micro: int):
        """Endless (indices, frozen inputs) iterators for clips and images from micro-step ``start_micro``."""
        t, acc = self.cfg.train, self.accelerator
        common = dict(rank=acc.process_index, world_size=acc.num_processes, start_step=start_micro)
        if t.matching == "fixed":
            pairs = self.train_data.pairs
            sampler = StepSampler(len(pairs), t.music_batch, t.seed, "pairs", **common)
            music_s, image_s = _Column(sampler, pairs, 0), _Column(sampler, pairs, 1)
        else:
            music_s = StepSampler(len(self.train_data.music), t.music_batch, t.seed, "music", **common)
            image_s = StepSampler(len(self.train_data.images), t.image_batch, t.seed, "images", **common)
        return self._stream("music", self.train_data.music, music_s), self._stream("images", self.train_data.images, image_s)

    def _stream(self, table: str, split, sampler):
        cached = self.cached["train"].get(table)
        if cached is not None:
            return iter(CachedStream(cached, sampler, self.accelerator.device))
        encoders = table_encoders(self.accelerator.unwrap_model(self.model), table)
        return iter(LiveStream(split, encoders, sampler, self.accelerator.device,
                               num_workers=self.cfg.train.num_workers, seed=self.cfg.train.seed))

    # -- one optimizer step
    def _micro_step(self, music_it, image_it) -> tuple[dict[str, float], float]:
        t0 = time.perf_counter()
        music_idx, music_in = next(music_it)
        image_idx, image_in = next(image_it)
        wait = time.perf_counter() - t0
        dev = self.accelerator.device
        va_music = self.train_va["music"][music_idx]
        targets = {"music": va_music, "caption": va_music, "image": self.train_va["images"][image_idx]}
        pair_mask = None
        if self.cfg.train.matching == "fixed":
            pair_mask = torch.eye(len(music_idx), dtype=torch.bool, device=dev)
        with self.accelerator.autocast():
            outputs = self.model({**music_in, **image_in})
            parts = mmva_loss(outputs, targets, self.cfg.loss, pair_mask)
        self.accelerator.backward(parts.total)
        if self.accelerator.sync_gradients and self.cfg.train.max_grad_norm:
            self.accelerator.clip_grad_norm_(self.model.parameters(), self.cfg.train.max_grad_norm)
        self.optimizer.step()
        if self.accelerator.sync_gradients:
            self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return parts.scalars(), wait

    def _reduce(self, scalars: dict[str, float]) -> dict[str, float]:
        """Mean of each logged scalar over processes."""
        keys = sorted(scalars)
        t = torch.tensor([scalars[k] for k in keys], device=self.accelerator.device)
        t = self.accelerator.reduce(t, reduction="mean")
        return dict(zip(keys, t.tolist()))

    # -- evaluation and checkpoints
    def evaluate(self) -> dict:
        preds = predict_split(self.model, self.val_data, device=self.accelerator.device,
                              batch_size=self.cfg.train.eval_batch, cached=self.cached["validation"],
                              accelerator=self.accelerator)
        scores = score(preds)
        scores["selection_score"] = selection_score(scores)
        return scores

    def _save_model(self, name: str, scores: dict | None) -> None:
        if self.accelerator.is_main_process:
            meta = jsonable({"step": self.state.step, "data": self.args.data, "validation": scores,
                             "selection_score": (scores or {}).get("selection_score")})
            save_checkpoint(self.accelerator.unwrap_model(self.model), self.out / name, meta)

    def _save_state(self) -> None:
        path = self.out / CHECKPOINTS / f"step-{self.state.step:06d}"
        self.accelerator.save_state(str(path))
        if self.accelerator.is_main_process:
            for old in sorted((self.out / CHECKPOINTS).glob("step-*"))[: -self.cfg.train.keep_checkpoints]:
                shutil.rmtree(old)
        self.accelerator.wait_for_everyone()

    def _log(self, record: dict) -> None:
        if self.accelerator.is_main_process:
            with open(self.out / "metrics.jsonl", "a", encoding="utf-8") as f:
                f.write(json.dumps(jsonable(record), sort_keys=True) + "\n")

    # -- the loop
    def fit(self) -> TrainResult:
        acc, t, a = self.accelerator, self.cfg.train, self.args
        if not a.resume:
            self._claim_output_folder()
        if acc.is_main_process:
            self.out.mkdir(parents=True, exist_ok=True)
            self.cfg.save(self.out / "config.yaml")
        acc.wait_for_everyone()
        if a.resume:
            latest = _latest_checkpoint(self.out)
            if latest is None:
                raise RunFolderError(f"--resume: no checkpoint under {self.out / CHECKPOINTS}")
            acc.load_state(str(latest))
            _info(acc, f"resumed from {latest} at step {self.state.step}")
        acc.init_trackers("mmva", config=_flat_hparams(self.cfg))
        music_it, image_it = self._streams(self.state.step * t.grad_accum)
        # Step time excludes validation and checkpoints: it is what the data pipeline must feed.
        start, wait_total, step_total = self.state.step, 0.0, 0.0
        stop_at = t.steps if a.stop_after is None else min(t.steps, start + a.stop_after)
        bar = tqdm(total=t.steps, initial=start, desc="train", disable=not self._show_progress(), unit="step")
        stopped_early, window = False, []
        self.model.train()
        while self.state.step < stop_at and not stopped_early:
            t_step = time.perf_counter()
            for _ in range(t.grad_accum):
                with acc.accumulate(self.model):
                    scalars, wait = self._micro_step(music_it, image_it)
                window.append(scalars)
                wait_total += wait
            step_total += time.perf_counter() - t_step
            self.state.step += 1
            bar.update(1)
            if self.state.step % a.log_every == 0 or self.state.step == stop_at:
                logged = self._reduce({k: sum(w[k] for w in window) / len(window) for k in window[0]})
                logged["lr"] = self.scheduler.get_last_lr()[0]
                bar.set_postfix(loss=f"{logged['loss']:.4f}")
                acc.log({f"train/{k}": v for k, v in logged.items()}, step=self.state.step)
                self._log({"step": self.state.step, "train": logged})
                window = []
            if self.state.step % t.eval_every == 0 or self.state.step == t.steps:
                stopped_early = self._evaluate_and_select()
            if self.state.step % t.checkpoint_every == 0 or self.state.step == stop_at or stopped_early:
                self._save_state()
        bar.close()
        steps_done = self.state.step - start
        if self.state.step >= t.steps or stopped_early:
            self._save_model("last", None)
        acc.wait_for_everyone()
        acc.end_training()
        result = TrainResult(self.out, self.state.step, self.state.best_step,
                             None if self.state.best_step is None else self.state.best_score, stopped_early,
                             data_wait_share=wait_total / step_total if step_total else 0.0,
                             steps_per_second=steps_done / step_total if step_total else 0.0,
                             world_size=acc.num_processes, threads=self.threads,
                             dropped_pairs=dict(self.train_data.dropped_pairs))
        if acc.is_main_process:
            best_meta = self.out / "best" / "meta.json"
            if best_meta.is_file():
                result.validation = json.loads(best_meta.read_text()).get("validation") or {}
            summary = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(result).items()}
            (self.out / "train.json").write_text(json.dumps(jsonable(summary), indent=2), encoding="utf-8")
        return result

    def _claim_output_folder(self) -> None:
        """A fresh run never mixes with an earlier one's checkpoints or logs."""
        existing = [n for n in RUN_FILES if (self.out / n).exists()]
        if not existing:
            return
        if not self.args.overwrite:
            raise RunFolderError(f"{self.out} already holds a run ({', '.join(existing)}): "
                                 "pass --resume to continue it or --overwrite to start afresh")
        self.accelerator.wait_for_everyone()
        if self.accelerator.is_main_process:
            for name in existing:
                remove(self.out / name)  # best/last are links to version folders: those go too

    def _evaluate_and_select(self) -> bool:
        """Validate, keep the best model, and say whether early stopping triggers."""
        scores = self.evaluate()
        sel = scores["selection_score"]
        self.accelerator.log({"val/selection_score": sel, **_flat_scalars(scores, "val")}, step=self.state.step)
        self._log({"step": self.state.step, "validation": scores})
        if sel > self.state.best_score:
            self.state.best_score, self.state.best_step, self.state.bad_evals = sel, self.state.step, 0
            self._save_model("best", scores)
        else:
            self.state.bad_evals += 1
        patience = self.cfg.train.patience
        return bool(patience) and self.state.bad_evals >= patience


def _flat_hparams(cfg: MMVAConfig) -> dict:
    """The config flattened to TensorBoard-friendly scalars/strings."""
    out = {}

    def walk(prefix: str, node) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(f"{prefix}.{k}" if prefix else k, v)
        else:
            out[prefix] = node if isinstance(node, (int, float, str, bool)) else str(node)

    walk("", cfg.to_dict())
    return out


def _flat_scalars(scores: dict, prefix: str) -> dict[str, float]:
    out = {}
    for k, v in scores.items():
        if isinstance(v, dict):
            out.update(_flat_scalars(v, f"{prefix}/{k}"))
        elif isinstance(v, (int, float)) and math.isfinite(v):
            out[f"{prefix}/{k}"] = float(v)
    return out


class _Column:
    """A batch sampler over one column of the pairs table (clips or images of fixed pairs)."""

    def __init__(self, sampler: StepSampler, pairs, column: int):
        self.sampler, self.pairs, self.column = sampler, pairs, column

    def __iter__(self):
        for indices in self.sampler:
            yield self.pairs[indices, self.column].tolist()


def _info(acc: Accelerator, message: str) -> None:
    if acc.is_main_process:
        print(message, file=sys.stderr)


def run(argv: list[str] | None = None) -> TrainResult:
    """Train as the command line would; returns what happened."""
    args = build_parser().parse_args(argv)
    with hf_progress(not args.no_progress):
        return Trainer(args).fit()


def main(argv: list[str] | None = None) -> int:
    try:
        result = run(argv)
    except (DataError, ConfigError, RunFolderError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if result.validation:
        print(_summary_line(result))
    return 0


def _summary_line(r: TrainResult) -> str:
    va = r.validation.get("va", {})
    r2 = ", ".join(f"{m} R2 V {d['valence']['r2']:.3f} A {d['arousal']['r2']:.3f}" for m, d in va.items())
    rho = ", ".join(f"{k} {v:.3f}" for k, v in r.validation.get("similarity_spearman", {}).items())
    return (f"best step {r.best_step} (validation): {r2}; similarity Spearman {rho}\n"
            f"checkpoints in {r.output_dir} (best/, last/); {r.steps_per_second:.1f} steps/s, "
            f"{100 * r.data_wait_share:.0f}% waiting for data")


if __name__ == "__main__":
    sys.exit(main())
