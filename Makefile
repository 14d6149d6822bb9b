# The README's two set-up commands: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
PIP     = $(PY) -m pip

.PHONY: demo test install bench clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

# torch is pinned through constraints.txt in the SAME pip call as everything else.
$(VENV)/.installed: pyproject.toml constraints.txt | $(VENV)/bin/python
	$(PIP) install -q -c constraints.txt -e ".[test]"
	touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/lbag demo

test: install
	$(PY) -m pytest -n 2 tests

# ONNX Runtime is one of the compared inference paths; the benchmarks report it skipped without it.
$(VENV)/.installed-bench: $(VENV)/.installed
	$(PIP) install -q -c constraints.txt -e ".[test,onnx]"
	touch $@

bench: $(VENV)/.installed-bench
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) build src/*.egg-info outputs
