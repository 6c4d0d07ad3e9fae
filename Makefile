# The commands a user needs: `make book`, `make test`, for students `make lab`, and for
# instructors `make student`.
# Each creates .venv and installs requirements.txt when .venv is missing or older than it.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# What the book's executed outputs depend on besides the notebooks' own code cells. jupyter-cache
# keys on the code cells only, so when any of these changes, or quick mode (ASYNCRL_QUICK) is not
# what the last build used, the cache and Sphinx's saved state are cleared and every chapter runs
# again.
BOOK_INPUTS := $(shell find asyncrl_lab book/_ext results -type f -not -name '*.pyc' 2>/dev/null) \
	_config.yml $(STAMP)
BOOK_STAMP := _build/.book-inputs
CLEAR_BOOK := rm -rf _build/.jupyter_cache _build/.doctrees _build/jupyter_execute _build/html

.PHONY: book test test-fast studies lab student clean

# The browser test drives Debian's Chromium, never a browser build downloaded at run time.
CHROMIUM := /usr/bin/chromium
$(CHROMIUM):
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium || \
	  (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium)

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -r requirements.txt
	$(PY) -m pip install --no-deps --no-build-isolation -e .
	touch $(STAMP)

test: $(STAMP) $(CHROMIUM)
	$(PY) -m pytest

# The suite without the tests marked slow (learning, fault injection, lifecycle, studies, the
# book's build): for a developer's edit-test loop. CI runs `make test`.
test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow"

# Train the book's studies that are missing, incomplete or stale (all, or ONLY=name ...), into
# results/studies/; a finished current run is never trained again.
studies: $(STAMP)
	$(PY) -m asyncrl_lab.book.studies $(ONLY)

$(BOOK_STAMP): $(BOOK_INPUTS)
	$(CLEAR_BOOK)
	mkdir -p _build
	touch $(BOOK_STAMP)

book: $(STAMP) $(BOOK_STAMP)
	@if [ "$$(cat _build/.book-mode 2>/dev/null)" != "ASYNCRL_QUICK=$$ASYNCRL_QUICK" ]; then \
		echo "quick mode changed: executing every chapter again"; $(CLEAR_BOOK); fi
	@echo "ASYNCRL_QUICK=$$ASYNCRL_QUICK" > _build/.book-mode
	$(VENV)/bin/jupyter-book build . --warningiserror --keep-going

# JupyterLab on the book, for students: a chapter's .md opens as a notebook (jupytext), and its
# kernel runs in book/, where the chapters expect to run. LAB_ARGS passes options (--port=...);
# root (a container, CI) must allow itself.
lab: $(STAMP)
	mkdir -p $(VENV)/share/jupyter/lab/settings
	cp book/_lab/overrides.json $(VENV)/share/jupyter/lab/settings/overrides.json
	$(VENV)/bin/jupyter lab --ServerApp.root_dir=book $(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_ARGS)

# The student edition: the book with every solution removed, the exercises' stubs in place, into
# $(STUDENT)/html and one notebook per chapter in $(STUDENT)/notebooks. Built from nothing each
# time: every chapter executes (ASYNCRL_QUICK=1 for quick mode).
STUDENT ?= _build/student
student: $(STAMP)
	$(PY) -m asyncrl_lab.book.student $(STUDENT)

clean:
	rm -rf _build
