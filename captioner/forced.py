"""Words the decoding rules forced on the model: tokens of a caption that the model itself, before
any rule, gave under ``FORCED_P`` probability at their place.

The constraints (:mod:`captioner.constraints`, :mod:`captioner.faithful`) keep untrue and added
words out while decoding. Where every word the model wanted next is out, it takes one it did not
want, and the sentence breaks: "with the sound of shift almost", "an electronic guitar rather
with drums", "a techno track in electronic and electronic". Every check on the text passes such a
caption (each word is true and allowed); what marks it is that the model would not have written
that word there. The probabilities come from ``generate``'s unprocessed logits, so measuring them
costs no extra forward pass. On 20 real clips read one by one (docs/captioner.md, "Forced
words"), every garbled caption held a token under 0.1 %, and none of the 11 that read well did.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported where a caption is generated: the pipeline's launcher needs none
    import torch

FORCED_P = 1e-3  # default threshold (docs/captioner.md, "Forced words")


@dataclass(frozen=True)
class Answer:
    """A generated answer, and the words in it holding a token under the threshold (with its
    probability), in order."""

    text: str
    forced: tuple[tuple[str, float], ...] = ()

    def message(self, threshold: float) -> str:
        words = ", ".join(f"{w!r} ({p:.1e})" for w, p in self.forced)
        return f"words the model gave under {threshold:g} probability, forced by the decoding rules: {words}"


def token_probabilities(logits: Sequence[torch.Tensor], tokens: torch.Tensor) -> torch.Tensor:
    """(batch, steps) probability the unprocessed model gave each generated token; ``logits`` is
    ``generate(..., output_logits=True)``'s per-step (batch, vocabulary) tuple."""
    import torch

    out = torch.empty(tokens.shape, dtype=torch.float32)
    for step, step_logits in enumerate(logits[: tokens.shape[1]]):
        logp = torch.log_softmax(step_logits.float(), dim=-1)
        out[:, step] = logp.gather(1, tokens[:, step:step + 1].to(logp.device))[:, 0].exp().cpu()
    return out


def forced_words(tokenizer, tokens: Sequence[int], probabilities: Sequence[float], threshold: float,
                 ) -> tuple[tuple[str, float], ...]:
    """The words of one answer holding a token under ``threshold``, each with its lowest token
    probability. The answer ends at the end-of-sequence or padding token; other special tokens
    are not words (the decoded text leaves them out too)."""
    stop = {tokenizer.eos_token_id, tokenizer.pad_token_id} - {None}
    special = set(tokenizer.all_special_ids)
    words: list[list] = []  # [text, lowest probability]
    for token, p in zip(tokens, probabilities):
        if int(token) in stop:
            break
        if int(token) in special:
            continue
        piece = tokenizer.decode([int(token)])
        starts = not words or piece[:1].isspace() or not piece.strip().isalnum() or not words[-1][0][-1:].isalnum()
        if starts:
            words.append([piece.strip(), float(p)])
        else:
            words[-1][0] += piece
            words[-1][1] = min(words[-1][1], float(p))
    return tuple((w, p) for w, p in words if p < threshold and w)


def answers(tokenizer, tokens: torch.Tensor, logits: Sequence[torch.Tensor] | None, threshold: float) -> list[Answer]:
    """The decoded answers of a batch (``tokens``: generated ids, no prompt), with their forced
    words when ``logits`` were kept and ``threshold`` > 0."""
    texts = tokenizer.batch_decode(tokens, skip_special_tokens=True)
    if logits is None or threshold <= 0:
        return [Answer(t) for t in texts]
    probs = token_probabilities(logits, tokens)
    return [Answer(t, forced_words(tokenizer, row.tolist(), p.tolist(), threshold))
            for t, row, p in zip(texts, tokens, probs)]
