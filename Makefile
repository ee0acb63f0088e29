# DeconvNet, reproduced. `make book` and `make test` set everything up on a fresh machine.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PRESET ?= auto        # auto = paper with CUDA, else cpu; or quick / cpu / paper
CHAPTER ?=            # e.g. 01 or 01_architecture, for `make chapter`
VOC ?=                # a real PASCAL VOC 2012 tree (its VOCdevkit folder) for every chapter; default: SynthVOC
SBD ?=                # SBD's release (benchmark_RELEASE), whose labels join VOC's train split; needs VOC
JOBS ?= 2             # pytest-xdist workers
DATA_OPTIONS = $(if $(strip $(VOC)),--voc-root $(strip $(VOC))) $(if $(strip $(SBD)),--sbd-root $(strip $(SBD)))

.PHONY: help venv book execute chapter render test lint clean pdf bench browser

help:
	@echo "make book [PRESET=quick|cpu|paper]  execute every chapter, then render the HTML book"
	@echo "          [VOC=~/data/VOCdevkit [SBD=~/data/benchmark_RELEASE]]  on real PASCAL VOC 2012 (+ SBD)"
	@echo "make chapter CHAPTER=01 [PRESET=..]  execute one chapter"
	@echo "make render                          render only, from the executed notebooks in book/"
	@echo "make pdf                             the whole book as one PDF (_build/pdf/book.pdf), every figure checked"
	@echo "make test                            lint, unit tests, nbval (quick), strict build, browser check"
	@echo "make bench                           measure this machine's costs (<10 min on 2 cores), write book/cost.md"

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

venv: $(STAMP)

book: execute render

execute: $(STAMP)
	$(BIN)/python -m deconvnet book --preset $(strip $(PRESET)) $(DATA_OPTIONS)

chapter: $(STAMP)
	@test -n "$(strip $(CHAPTER))" || { echo "say which chapter: make chapter CHAPTER=01"; exit 2; }
	$(BIN)/python -m deconvnet book --preset $(strip $(PRESET)) --only $(strip $(CHAPTER)) $(DATA_OPTIONS)

render: $(STAMP)
	$(BIN)/jupyter-book build . -W -n --keep-going
	@echo "The book is at $(CURDIR)/_build/html/index.html"

# One HTML page printed by headless Chromium, then checked: no blank page, every figure of the page in the PDF.
pdf: $(STAMP) browser
	$(BIN)/python -m deconvnet.book.pdf

# Timings on the CPU into benchmarks/results/cpu.json, then the Cost appendix page from every result file.
bench: $(STAMP)
	$(BIN)/python benchmarks/bench.py

lint: $(STAMP)
	$(BIN)/ruff check .

# Debian's chromium for the browser check and the PDF: installed when missing and possible, else one clear line.
browser:
	bash .ci/chromium

# One torch thread per pytest worker: two workers with two threads each would fight over two cores.
test: browser lint
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -n $(strip $(JOBS)) --dist loadfile --nbval-lax --durations=15 tests notebooks

clean:
	rm -rf _build
