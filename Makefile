# neurolink: two commands on a fresh machine.  `make demo` and `make test` install everything first.
PY      ?= python3
VENV    := .venv
VPY     := $(VENV)/bin/python
STAMP   := $(VENV)/.setup-stamp
APT_PKGS := mosquitto wavpack libwavpack-dev

.PHONY: setup demo test test-fast bench lint clean sys-info

setup: $(STAMP)

$(STAMP): pyproject.toml scripts/setup.sh
	bash scripts/setup.sh "$(PY)" "$(VENV)"
	touch $(STAMP)

demo: setup
	$(VPY) -m neurolink demo --seconds 10

test: setup lint
	bash scripts/run_tests.sh $(VPY)

test-fast: setup
	$(VPY) -m pytest -q -m "not slow" -x

bench: setup
	mkdir -p bench-results
	$(VPY) -m neurolink bench codecs --json bench-results/codecs.json --png bench-results/codecs.png
	$(VPY) -m neurolink bench rd --json bench-results/rd.json --png bench-results/rd.png
	$(VPY) -m neurolink bench latency --json bench-results/latency.json --png bench-results/latency.png
	$(VPY) -m neurolink bench fuzz --json bench-results/fuzz.json
	$(VPY) -m neurolink bench archive --json bench-results/archive.json
	$(VPY) -m agents.evaluate --traces ../shared/traces/mahimahi_cellular ../shared/traces/akamai_cellular_loss \
		--json bench-results/controllers.json --png bench-results/controllers_cdf.png

# ruff over the whole repo, mypy (settings in pyproject.toml) over the packages
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy neurolink sim agents

sys-info: setup
	$(VPY) -m neurolink sys-info

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
