"""Tiny random-initialised models and a locally trained BPE tokenizer, saved like real checkpoints.

They go through the same ``from_pretrained`` code path as real weights; outputs are random
tokens, so tests check shapes, plumbing and post-processing decisions, not caption quality.
"""
from __future__ import annotations

from pathlib import Path

from captioner.prompts import EXAMPLES, SYSTEM, tags_for

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
    "{% if m['content'] is string %}{{ m['content'] }}"
    "{% else %}{% for part in m['content'] %}"
    "{% if part['type'] == 'audio' %}Audio 1: <|audio_bos|><|AUDIO|><|audio_eos|>\n"
    "{% else %}{{ part['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
CHAT_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
AUDIO_SPECIALS = ["<|AUDIO|>", "<|audio_bos|>", "<|audio_eos|>"]


def train_tokenizer(folder: Path, extra_specials: list[str] = (), vocab_size: int = 600, texts: list[str] = ()):
    """A byte-level BPE trained on the prompt texts (plus ``texts``), wrapped as a left-padding fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    corpus = [SYSTEM] + [tags_for(e.descriptors, e.valence, e.arousal, facts=e.facts).render() + "\n" + e.answer
                          for e in EXAMPLES] + list(texts)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = CHAT_SPECIALS + list(extra_specials)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus * 20, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=None, eos_token="<|im_end|>", pad_token="<|endoftext|>",
        additional_special_tokens=specials[1:], padding_side="left")
    fast.chat_template = CHATML
    fast.save_pretrained(folder)
    return fast


def tiny_causal_lm(folder: Path, arch: str = "llama") -> Path:
    """Save a 1-layer, 32-wide Llama or Qwen2 causal LM plus tokenizer to ``folder``."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    tok = train_tokenizer(folder)
    cfg_cls, model_cls = {"llama": (LlamaConfig, LlamaForCausalLM), "qwen2": (Qwen2Config, Qwen2ForCausalLM)}[arch]
    cfg = cfg_cls(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                  num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=4096,
                  eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, bos_token_id=None)
    torch.manual_seed(0)
    model_cls(cfg).save_pretrained(folder)
    return folder


def tiny_qwen2_audio(folder: Path) -> Path:
    """A Qwen2-Audio-shaped model: 1-layer 32-wide audio encoder (128 mel bins), 1-layer qwen2 text.

    Saved with a WhisperFeatureExtractor(feature_size=128) + Qwen2AudioProcessor, so loading goes
    through ``AutoProcessor`` and the architecture named in config.json, as the 7B model does.
    """
    import torch
    from transformers import (Qwen2AudioConfig, Qwen2AudioForConditionalGeneration, Qwen2AudioProcessor,
                              WhisperFeatureExtractor)

    tok = train_tokenizer(folder, AUDIO_SPECIALS)
    cfg = Qwen2AudioConfig(
        audio_config={"d_model": 32, "encoder_layers": 1, "encoder_attention_heads": 2, "encoder_ffn_dim": 64,
                      "num_mel_bins": 128},
        text_config={"model_type": "qwen2", "vocab_size": len(tok), "hidden_size": 32, "intermediate_size": 64,
                     "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 2,
                     "max_position_embeddings": 4096, "eos_token_id": tok.eos_token_id,
                     "pad_token_id": tok.pad_token_id},
        audio_token_index=tok.convert_tokens_to_ids("<|AUDIO|>"),
    )
    torch.manual_seed(0)
    model = Qwen2AudioForConditionalGeneration(cfg)
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    model.save_pretrained(folder)
    processor = Qwen2AudioProcessor(WhisperFeatureExtractor(feature_size=128), tok, chat_template=CHATML)
    processor.save_pretrained(folder)
    return folder
