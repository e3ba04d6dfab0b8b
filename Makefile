# ConvNets, from pixels to ResNet — the two commands:
#   make demo   release every assignment, grade a sample class with nbgrader, print the grade table
#   make test   run every test (what CI runs)
# Both set up .venv (pinned dependencies from requirements.txt) the first time.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PIP    := $(PY) -m pip --disable-pip-version-check

.PHONY: setup demo test bench release lectures lab hub site clean help

help:
	@echo "make demo      release, grade a sample class, print students x points (the main job)"
	@echo "make test      run the whole test suite"
	@echo "make bench     print speed figures as ratios against PyTorch"
	@echo "make release   regenerate assignments/ from solutions/"
	@echo "make lectures  re-execute lectures/ in place (figures and outputs)"
	@echo "make lab       JupyterLab for a student, on your own copies of the assignments (work/mine/)"
	@echo "make hub       the course on a JupyterHub, as root: make hub INSTRUCTOR=name STUDENTS=name,name,@group [PORT=8000]"
	@echo "make site      the lectures and blank assignments as a static HTML book (work/site/_build/html)"
	@echo "make setup     only create .venv with the pinned dependencies"
	@echo "make clean     remove .venv and work/"

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "error: Python 3.11 or newer is needed; run make PYTHON=python3.11 ...")'
	@echo "Setting up $(VENV) with the pinned dependencies (first run only)..."
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -r requirements.txt
	$(PIP) install --no-deps -e .
	$(PY) -m autograder.lab
	@touch $(STAMP)

demo: $(STAMP)
	$(PY) -m autograder demo

test: $(STAMP)
	$(PY) -m pytest -n auto --dist loadscope

# make bench GROUP: only that group (make bench grading, make bench scale)
ifeq (bench,$(firstword $(MAKECMDGOALS)))
BENCH_GROUP := $(wordlist 2,$(words $(MAKECMDGOALS)),$(MAKECMDGOALS))
$(eval $(BENCH_GROUP):;@:)
endif

bench: $(STAMP)
	$(PY) benchmarks/run.py $(BENCH_GROUP)

lab: $(STAMP)
	$(PY) -m autograder lab

# make hub INSTRUCTOR=name STUDENTS=name,name,@group [PORT=8000]: as root; see README (Instructors: the hub)
PORT ?= 8000
hub: $(STAMP)
	$(PY) -m autograder hub --instructor "$(INSTRUCTOR)" --student "$(STUDENTS)" --port $(PORT)

site: $(STAMP)
	$(PY) tools/build_site.py

release: $(STAMP)
	$(PY) -m autograder release

lectures: $(STAMP)
	$(PY) tools/execute_notebooks.py lectures/*.ipynb

clean:
	rm -rf $(VENV) work
