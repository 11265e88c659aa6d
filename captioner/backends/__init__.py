"""Built-in captioner backends; importing this package registers them.

Backend modules import their heavy dependencies (torch, transformers) inside constructors, so
registering all of them stays cheap for a pipeline that only uses the descriptor template.
"""
from captioner.backends import audio_llm, descriptor, tags_llm  # noqa: F401
