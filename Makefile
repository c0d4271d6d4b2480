# The two commands of the README: `make demo` and `make test`. Both set up what they need themselves.
PY := .venv/bin/python
STAMP := .venv/.installed

.PHONY: demo test lint tools stack stack-stop bench clean

$(STAMP): pyproject.toml
	./scripts/bootstrap-venv.sh

demo: $(STAMP)
	$(PY) -m exporter demo

tools:
	./scripts/install-tools.sh

test: $(STAMP) tools
	$(PY) -m pytest

lint: $(STAMP)
	.venv/bin/ruff check .
	.venv/bin/ruff format --check exporter tests bench
	.venv/bin/mypy

bench: $(STAMP)
	$(PY) -m bench

clean:
	rm -rf .venv .pytest_cache .mypy_cache .ruff_cache
