"""Predictions of a model on a split, and their scores (shared by training's validation,
``python -m mmva_model.evaluate`` and the zero-shot tasks)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate.utils import gather_object
from torch.utils.data import DataLoader, Subset

from dataset_card.schema import IMAGES, MUSIC
from mmva_model.config import CROSS_PAIRS
from mmva_model.data import SplitData, TableSplit
from mmva_model.features import Frozen, PreparedRows, collate_prepared, own_generator, run_frozen, select, table_encoders
from mmva_model.metrics import retrieval_metrics, similarity_spearman, va_metrics
from mmva_model.model import MMVA
from mmva_model.similarity import va_similarity_matrix

# Retrieval tasks: (query modality, candidate modality).
RETRIEVAL = (("caption", "music"), ("image", "music"))


@dataclass
class Predictions:
    """One modality's predictions on a split, rows in table order."""

    ids: list[str]
    va_true: np.ndarray  # (N, 2)
    va_pred: np.ndarray  # (N, 2)
    embedding: np.ndarray  # (N, d), unit norm


def _forward(model: MMVA, frozen: Frozen) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    # The unwrapped module: a DDP forward would sync buffers, and ranks run different counts here.
    with torch.no_grad():
        out = _unwrap(model)(frozen)
    return {m: (o.va.float().cpu().numpy(), o.embedding.float().cpu().numpy()) for m, o in out.items()}


def predict_rows(model: MMVA, table: TableSplit, indices: np.ndarray, *, device: torch.device,
                 batch_size: int = 64, cached: Frozen | None = None, num_workers: int = 0
                 ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{modality: (va (n, 2), embedding (n, d))}`` for rows ``indices`` of ``table``."""
    encoders = table_encoders(_unwrap(model), table.table)
    chunks: list[dict[str, tuple[np.ndarray, np.ndarray]]] = []
    if cached is not None:
        for start in range(0, len(indices), batch_size):
            idx = torch.as_tensor(indices[start:start + batch_size], dtype=torch.long)
            frozen = {m: {k: v.to(device) for k, v in b.items()} for m, b in select(cached, idx).items()}
            chunks.append(_forward(model, frozen))
    else:
        loader = DataLoader(Subset(PreparedRows(table, encoders), [int(i) for i in indices]),
                            batch_size=batch_size, num_workers=num_workers, collate_fn=collate_prepared(encoders),
                            generator=own_generator())
        for _, batch, _ in loader:
            chunks.append(_forward(model, run_frozen(encoders, batch, device)))
    if not chunks:
        d = _unwrap(model).cfg.model.embed_dim
        return {m: (np.zeros((0, 2), np.float32), np.zeros((0, d), np.float32)) for m in encoders}
    return {m: (np.concatenate([c[m][0] for c in chunks]), np.concatenate([c[m][1] for c in chunks]))
            for m in encoders}


def _unwrap(model) -> MMVA:
    return getattr(model, "module", model)


def predict_split(model, data: SplitData, *, device: torch.device, batch_size: int = 64,
                  cached: dict[str, Frozen] | None = None, accelerator=None) -> dict[str, Predictions]:
    """Every modality's predictions on ``data``; with ``accelerator``, rows are split between
    processes and gathered back in order (every process gets the full result)."""
    cached = cached or {}
    was_training = model.training
    model.eval()
    out: dict[str, Predictions] = {}
    for table, split in ((MUSIC, data.music), (IMAGES, data.images)):
        indices = np.arange(len(split))
        if accelerator is not None and accelerator.num_processes > 1:
            with accelerator.split_between_processes(indices.tolist()) as mine:
                part = predict_rows(model, split, np.asarray(mine, dtype=np.int64), device=device,
                                    batch_size=batch_size, cached=cached.get(table))
            gathered = gather_object([part])  # one dict per process, in rank order
            part = {m: tuple(np.concatenate([g[m][j] for g in gathered]) for j in range(2)) for m in gathered[0]}
        else:
            part = predict_rows(model, split, indices, device=device, batch_size=batch_size,
                                cached=cached.get(table))
        for m, (va, emb) in part.items():
            out[m] = Predictions(list(split.ids), split.va, va, emb)
    model.train(was_training)
    return out


def similarity_scores(preds: dict[str, Predictions]) -> dict[str, float]:
    """Spearman between predicted cosine and VA target similarity, per cross-modal pair."""
    out = {}
    for a, b in CROSS_PAIRS:
        pa, pb = preds[a], preds[b]
        cos = pa.embedding @ pb.embedding.T
        target = va_similarity_matrix(torch.tensor(pa.va_true), torch.tensor(pb.va_true)).numpy()
        out[f"{a}-{b}"] = similarity_spearman(cos, target)
    return out


def retrieval_scores(preds: dict[str, Predictions]) -> dict[str, dict[str, float]]:
    """Text->music and image->music retrieval; the relevant candidate is the clip closest in VA."""
    out = {}
    for q, c in RETRIEVAL:
        pq, pc = preds[q], preds[c]
        relevance = va_similarity_matrix(torch.tensor(pq.va_true), torch.tensor(pc.va_true)).numpy()
        out[f"{q}->{c}"] = retrieval_metrics(pq.embedding @ pc.embedding.T, relevance, n_relevant=1)
    return out


def score(preds: dict[str, Predictions]) -> dict:
    """VA regression per modality, similarity Spearman per pair, retrieval."""
    return {
        "va": {m: va_metrics(p.va_true, p.va_pred) for m, p in preds.items()},
        "similarity_spearman": similarity_scores(preds),
        "retrieval": retrieval_scores(preds),
        "n": {m: len(p.ids) for m, p in preds.items()},
    }


def jsonable(x: Any) -> Any:
    """Dataclasses, numpy values and paths as plain JSON values; NaN/inf become None (strict JSON)."""
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return {f.name: jsonable(getattr(x, f.name)) for f in dataclasses.fields(x) if not f.name.startswith("_")}
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return jsonable(x.tolist())
    if isinstance(x, (float, np.floating)):
        return float(x) if np.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, Path):
        return str(x)
    return x


def selection_score(scores: dict) -> float:
    """The number best-checkpoint selection and early stopping maximise on validation:
    mean R^2 over modalities x {valence, arousal} + mean similarity Spearman (NaN counts as 0)."""
    r2 = [d["r2"] for per in scores["va"].values() for d in per.values()]
    rho = list(scores["similarity_spearman"].values())
    return float(np.mean(np.nan_to_num(r2)) + np.mean(np.nan_to_num(rho)))
