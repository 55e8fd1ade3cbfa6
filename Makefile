# Two entry points (see README): `make demo` and `make test`. Both install first, idempotently:
# the venv is reused, torch is installed only when the pinned version is missing, and the
# package is reinstalled only when pyproject.toml, .ci/constraints.txt or this file changes. sam2 builds from source
# (~2 min). Dependencies install within the versions of the last passing fresh install (.ci/constraints.txt).
VENV ?= .venv
PYTHON := $(VENV)/bin/python
TORCH := torch==2.14.1 torchvision==0.29.1
CONSTRAINTS := .ci/constraints.txt
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml Makefile $(CONSTRAINTS) | sha1sum | cut -c1-12)

.PHONY: install demo test

install: $(STAMP)

$(STAMP): pyproject.toml Makefile $(CONSTRAINTS)
	test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -c "import torch, torchvision, sys; sys.exit(torch.__version__.split('+')[0] != '2.14.1')" 2>/dev/null \
		|| $(PYTHON) -m pip install $(TORCH)
	$(PYTHON) -m pip install -c $(CONSTRAINTS) -e '.[dev,sam2,diffusion]'
	rm -f $(VENV)/.installed-*
	touch $@

demo: install
	rm -rf demo
	$(VENV)/bin/motionpipe sample-data demo
	$(VENV)/bin/motionpipe annotate demo/shards demo/out
	$(VENV)/bin/motionpipe inspect demo/out

# pytest exits 5 when it collects no tests: that must fail, not pass silently.
test: install
	$(PYTHON) -m pytest; status=$$?; \
	if [ $$status -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi; exit $$status
