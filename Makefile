# make demo: the crash and the fix, side by side.   make test: the whole suite.
# Both set themselves up: what they need through apt when missing and allowed
# (root; the demo needs only gobjc and GNUstep Foundation, see objc-deps), and
# a virtualenv in .venv with objcprefork installed from this tree (a real,
# non-editable install).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SOURCES := setup.py pyproject.toml $(wildcard src/*.c src/*.h) $(wildcard objcprefork/*.py objcprefork/*/*.py objcprefork/data/*) objcprefork.pth objcprefork.start

# The suites that must pass in the shape of the targets (docs/testing.md, "Lanes").
LANE_SUITES := test_fork.py test_restricted.py test_startup.py test_learn.py test_reach.py test_servers.py

.PHONY: test-lanes test demo demo-deps objc-deps emulation docs lint check-dist check-macos wheel-test bench sanitize test-cpython-fork clean

test: objc-deps $(VENV)/.installed
	cd tests && ../$(VENV)/bin/python -m pytest -p no:cacheprovider $(PYTEST_ARGS)

# macOS-shaped: GNUstep Foundation and the emulation in every process from the
# start, subprocess forking with the GIL held; musl-shaped: no
# __libc_single_threaded for the core (tests/lanes/).
test-lanes: objc-deps $(VENV)/.installed
	mkdir -p .objc && gcc -shared -fPIC -o .objc/hide_single_threaded.so tests/lanes/hide_single_threaded.c -ldl
	cd tests && OBJCPREFORK_LANE=macos LD_PRELOAD="$$($(PYTHON) -c 'import ctypes.util; print(ctypes.util.find_library("gnustep-base") or "")')" \
	  ../$(PY) -m pytest -q -p no:cacheprovider $(LANE_SUITES)
	cd tests && OBJCPREFORK_LANE=musl LD_PRELOAD=$(CURDIR)/.objc/hide_single_threaded.so \
	  ../$(PY) -m pytest -q -p no:cacheprovider $(LANE_SUITES)

demo: demo-deps $(VENV)/.installed
	cd tests && ../$(PY) demo.py

# Offline checks of the packaging and the workflow (issue: ship it).
TOOLS ?= .venv-tools
TOOL_PY := $(TOOLS)/bin/python
$(TOOLS)/.installed: pyproject.toml Makefile
	test -x $(TOOL_PY) || $(PYTHON) -m venv $(TOOLS)
	$(TOOL_PY) -m pip install -q --upgrade pip
	$(TOOL_PY) -m pip install -q "cibuildwheel==4.3.5" check-jsonschema zizmor \
	  "validate-pyproject[all]" build twine check-wheel-contents abi3audit check-manifest \
	  mypy ruff ziglang lief pyyaml pytest
	touch $@

check-dist: $(TOOLS)/.installed
	$(TOOLS)/bin/check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml
	$(TOOLS)/bin/zizmor --offline .github/workflows/
	$(TOOL_PY) .ci/check_workflows.py .github/workflows/*.yml
	$(TOOL_PY) .ci/check_artifacts.py --dry .ci/release-files.txt
	$(TOOL_PY) -m pytest -q -p no:cacheprovider .ci/test_release_checks.py
	$(TOOLS)/bin/validate-pyproject pyproject.toml
	$(TOOLS)/bin/check-manifest
	rm -rf dist
	OBJCPREFORK_REQUIRE_NATIVE=1 $(TOOL_PY) -m build --outdir dist .   # the sdist, then the wheel from it
	$(TOOLS)/bin/twine check --strict dist/*
	$(TOOLS)/bin/check-wheel-contents dist/*.whl
	$(TOOLS)/bin/abi3audit --strict --report dist/*abi3*.whl
	$(TOOL_PY) .ci/check_dist.py dist

# The macOS branches of the C core, cross-compiled with Zig's clang and
# inspected as Mach-O (.ci/check_macos.py says what is checked).
check-macos: $(TOOLS)/.installed
	$(TOOL_PY) .ci/check_macos.py

lint: $(TOOLS)/.installed
	$(TOOLS)/bin/ruff check objcprefork tests .ci benchmarks docs setup.py _objcprefork_start.py
	$(TOOLS)/bin/mypy --strict objcprefork _objcprefork_start.py

# The wheels workflow's test step, dry-run here: the wheel built as cibuildwheel
# builds it, its exact test-command on every CPython 3.10+, then with .start files.
wheel-test: objc-deps $(TOOLS)/.installed
	$(TOOL_PY) .ci/wheel_test.py

# Benchmarks print tables; results are recorded by hand in docs/performance.md.
bench: objc-deps $(VENV)/.installed
	cd benchmarks && for b in fork_overhead fork_work fork_memory mapped_library warmup startup reconfigure parsers; do ../$(PY) $$b.py || exit 1; done

# The extension built with AddressSanitizer and UndefinedBehaviorSanitizer, the
# core and stress tests run under them (any report fails), then valgrind.
# clang-19's runtime, not GCC 12's: before LLVM 18 (llvm-project#75290) ASan's
# allocator had no atfork handler, so a child forked while another thread
# held its lock hung at its first malloc (seen: the emulation's child handler,
# in a fork from a C thread during the stress test).
SANITIZE_VENV ?= .venv-sanitize
SANITIZE_LOGS ?= /tmp/objcprefork-sanitize
SANITIZE_CC ?= clang-19
sanitize: objc-deps
	test -x $(SANITIZE_VENV)/bin/python || $(PYTHON) -m venv $(SANITIZE_VENV)
	$(SANITIZE_VENV)/bin/python -m pip install -q --upgrade pip setuptools wheel pytest
	rm -rf build  # never reuse objects across sanitized and plain builds
	CC=$(SANITIZE_CC) \
	CFLAGS="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer -g -O1" \
	LDFLAGS="-fsanitize=address,undefined" OBJCPREFORK_REQUIRE_NATIVE=1 \
	  $(SANITIZE_VENV)/bin/python -m pip install -q --no-build-isolation --force-reinstall --no-deps .
	rm -rf build
	nm -D $(SANITIZE_VENV)/lib/python3*/site-packages/objcprefork/_objcprefork*.so | grep -q __asan_report \
	  || { echo "the extension is not instrumented"; exit 1; }
	rm -rf $(SANITIZE_LOGS) && mkdir -p $(SANITIZE_LOGS)
	cd tests && LD_PRELOAD="$$($(SANITIZE_CC) --print-file-name=libclang_rt.asan-x86_64.so)" \
	  ASAN_OPTIONS=detect_leaks=0:log_path=$(SANITIZE_LOGS)/asan \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:log_path=$(SANITIZE_LOGS)/ubsan \
	  ../$(SANITIZE_VENV)/bin/python -m pytest -q -p no:cacheprovider test_fork.py test_stress.py test_restricted.py test_suites.py
	@if ls $(SANITIZE_LOGS)/* >/dev/null 2>&1; then cat $(SANITIZE_LOGS)/*; echo "sanitizer reports above"; exit 1; fi
	@echo "sanitizers: no report"
	$(PY) .ci/valgrind.py

# CPython's own fork tests, with objcprefork active at start-up and GNUstep
# Foundation loaded into every process, against the same tests without it.
test-cpython-fork: objc-deps $(VENV)/.installed
	$(PY) .ci/cpython_fork_tests.py

# The emulation of Apple's check and the test fixtures, for trying it by hand
# (docs/testing.md, "Try it on Linux"): .objc/libforksafety.so and friends.
emulation: demo-deps $(VENV)/.installed
	$(PY) tests/objc/build.py .objc

# What is generated from the sources (docs/generate.py says what); a test
# fails when it is stale.
docs: $(VENV)/.installed
	$(PY) docs/generate.py

# Installs, when missing and we may (root, apt-get), what each needs. The demo:
# GCC's Objective-C compiler (gobjc) and GNUstep Foundation. The tests also:
# clang, cmake, ninja and robin-map for GNUstep's libobjc2 (built from the
# tarball docs/testing.md names), clang-19's sanitizer runtimes for make
# sanitize, and gdb (its gcore writes the core file explain's test reads).
# Recursive variables: their $$ reach the shell.
DEMO_PACKAGES := gobjc libgnustep-base-dev
OBJC_PACKAGES := $(DEMO_PACKAGES) clang cmake ninja-build robin-map-dev clang-19 libclang-rt-19-dev gdb
DEMO_PRESENT = echo "int main(void){return 0;}" | gcc -x objective-c -o /dev/null - -lobjc 2>/dev/null \
  && /sbin/ldconfig -p | grep -q libgnustep-base
OBJC_PRESENT = $(DEMO_PRESENT) && command -v clang >/dev/null \
  && test -f /usr/include/tsl/robin_map.h && command -v ninja >/dev/null && command -v gdb >/dev/null \
  && test -f "$$(clang-19 --print-file-name=libclang_rt.asan-x86_64.so 2>/dev/null)"
define apt-get-unless
	@if $(2); then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	   echo "installing $(1) with apt-get"; \
	   apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(1) >/dev/null; \
	else echo "note: some of $(1) missing and apt-get not usable here; what needs them will skip"; fi
endef
demo-deps:
	$(call apt-get-unless,$(DEMO_PACKAGES),$(DEMO_PRESENT))
objc-deps:
	$(call apt-get-unless,$(OBJC_PACKAGES),$(OBJC_PRESENT))

$(VENV)/.installed: $(SOURCES)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools wheel
	OBJCPREFORK_REQUIRE_NATIVE=1 $(PY) -m pip install -q --no-build-isolation '.[test]'
	touch $@

clean:
	rm -rf $(VENV) $(TOOLS) $(SANITIZE_VENV) build dist *.egg-info
