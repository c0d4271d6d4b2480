# The two commands of the README: `make demo` and `make test`. Both set up what they need themselves.
PY := .venv/bin/python
STAMP := .venv/.installed

.PHONY: demo demo-audio test lint tools stack-tools k8s stack stack-up stack-down stack-status rules bench bench-page soak clean

$(STAMP): pyproject.toml simulator/pyproject.toml
	./scripts/bootstrap-venv.sh

demo: $(STAMP)
	$(PY) -m genesys_sentiment_exporter demo

# The demo on audio: the simulator plays Genesys' AudioHook client and speaks (espeak-ng) on every call;
# agent-legacy-1's customer is angry. Needs espeak-ng (`make tools` installs it as root).
demo-audio: $(STAMP)
	$(PY) -m genesys_sentiment_exporter demo --source notifications,audiohook --scenario no-sentiment

tools:
	./scripts/install-tools.sh

# Only the two Debian packages the stack runs (no Node.js, no schema project).
stack-tools:
	./scripts/install-tools.sh stack

test: $(STAMP) tools
	$(PY) -m pytest

lint: $(STAMP)
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy
	.venv/bin/mypy deploy/kubernetes/generate.py

# The whole monitoring topology without Docker (Debian's prometheus and prometheus-alertmanager, the
# exporter in demo mode, the local Slack/PagerDuty receiver) on 127.0.0.1: 8729, 9090, 9093, 9099.
stack: $(STAMP) stack-tools
	$(PY) -m stack up $(STACK_ARGS)

stack-up: $(STAMP) stack-tools
	$(PY) -m stack up --detach $(STACK_ARGS)

stack-down: $(STAMP)
	$(PY) -m stack down

stack-status: $(STAMP)
	$(PY) -m stack status

rules: tools k8s
	promtool check rules prometheus/rules/*.rules.yml
	promtool test rules prometheus/tests/genesys_sentiment_rules_test.yml
	amtool check-config alertmanager/alertmanager.yml

# deploy/kubernetes' copies of prometheus/rules and grafana/dashboards (tests/deploy checks they match).
k8s: $(STAMP)
	$(PY) deploy/kubernetes/generate.py

bench: $(STAMP)
	$(PY) -m bench; status=$$?; $(PY) -m bench.table && exit $$status

# The end-to-end time-to-page into bench/time_to_page.json, which `make bench` reports (issue 13).
bench-page: $(STAMP)
	GENESYS_TIME_TO_PAGE_JSON=$(CURDIR)/bench/time_to_page.json $(PY) -m pytest -q -p no:cacheprovider \
		tests/e2e/test_end_to_end.py -k sour_call_pages

# Ten minutes of random faults under load (bench/soak.py): every frame accounted, RSS flat within 10 %.
soak: $(STAMP)
	$(PY) -m bench.soak $(SOAK_ARGS)

clean:
	rm -rf .venv .pytest_cache .mypy_cache .ruff_cache
