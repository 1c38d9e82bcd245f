# Two commands do everything on a fresh machine: `make demo` and `make test`.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
SYSSTAMP := var/.system-packages
APT_PACKAGES := chromium mosquitto postgresql ffmpeg fonts-noto-cjk nginx poppler-utils libpango-1.0-0 libpangoft2-1.0-0 \
  python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-rtsp gstreamer1.0-plugins-base gstreamer1.0-plugins-good \
  gstreamer1.0-plugins-ugly gstreamer1.0-plugins-bad \
  libfaketime faketime

.PHONY: demo test bench fuzz lint venv system-packages clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

# Debian packages the tests drive for real (browser, MQTT broker, database, ffprobe, CJK fonts).
system-packages:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q $$missing; \
	fi

# the demo's docks talk MQTT to a mosquitto it starts (a Debian package, like the tests' servers)
demo: $(STAMP) system-packages
	$(BIN)/dronedispatch demo $(ARGS)

test: $(STAMP) system-packages
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-logo --no-cache
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

bench: $(STAMP) system-packages
	@for b in $(filter-out bench/benchkit.py,$(wildcard bench/*.py)); do echo "== $$b"; $(BIN)/python $$b || exit 1; done

# Long fuzz runs of the parsers (MAVLink, CAP/XML, MQTT payloads, request bodies); not part of `make test`,
# which runs the same properties briefly. FUZZ_EXAMPLES examples per property.
FUZZ_EXAMPLES ?= 20000
fuzz: $(STAMP)
	DD_FUZZ=1 DD_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/python -m pytest -q --timeout=0 tests/fuzz $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-logo --no-cache
	$(BIN)/mypy dronedispatch

clean:
	rm -rf $(VENV) var .pytest_cache
