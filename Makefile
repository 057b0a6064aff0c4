# Every target creates .venv (Python 3.11) and installs the project into it first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.raydog-installed
PYTEST_ARGS ?=
# make test runs the suite on this many pytest-xdist workers; the exec-mode tests that start
# Ray share one worker (xdist_group "exec", --dist loadgroup). PYTEST_WORKERS=0 runs serially.
PYTEST_WORKERS ?= 2

.PHONY: venv demo test bench docs lint release clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	@touch $@

venv: $(STAMP)

demo: venv
	$(BIN)/python -m raydog.demo

test: venv
	$(BIN)/python -m pytest $(if $(filter 0,$(PYTEST_WORKERS)),,-n $(PYTEST_WORKERS) --dist loadgroup) $(PYTEST_ARGS)

bench: venv
	$(BIN)/python -m bench

docs: venv
	$(BIN)/python -m pytest tests/docs

# The release for this machine's platform in dist/: zip, SHA256SUMS (signed with SIGN_KEY,
# a gpg key, when given) and the network-mirror JSON. See docs/guides/ci.md for the matrix.
release: venv
	$(BIN)/raydog package --out dist $(if $(SIGN_KEY),--sign-key $(SIGN_KEY))

lint: venv
	$(BIN)/python -m ruff check provider tests bench

clean:
	rm -rf $(VENV) build *.egg-info provider/*.egg-info
