# make demo: the crash and the fix, side by side.   make test: the whole suite.
# Both set themselves up: GCC's Objective-C compiler and GNUstep Foundation
# through apt when missing and allowed (root), and a virtualenv in .venv with
# objcprefork installed from this tree (a real, non-editable install).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SOURCES := setup.py pyproject.toml src/_objcprefork.c $(wildcard objcprefork/*.py objcprefork/*/*.py objcprefork/data/*) objcprefork.pth objcprefork.start

.PHONY: test demo objc-deps emulation docs lint check-dist check-macos wheel-test bench sanitize test-cpython-fork clean

test: objc-deps $(VENV)/.installed
	cd tests && ../$(VENV)/bin/python -m pytest -p no:cacheprovider $(PYTEST_ARGS)

demo: objc-deps $(VENV)/.installed
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
	$(TOOLS)/bin/ruff check objcprefork tests .ci benchmarks setup.py _objcprefork_start.py
	$(TOOLS)/bin/mypy --strict objcprefork _objcprefork_start.py

# The wheels workflow's test step, dry-run here: the wheel built as cibuildwheel
# builds it, its exact test-command on every CPython 3.10+, then with .start files.
wheel-test: objc-deps $(TOOLS)/.installed
	$(TOOL_PY) .ci/wheel_test.py

# Benchmarks print tables; results are recorded by hand in docs/performance.md.
bench: objc-deps $(VENV)/.installed
	cd benchmarks && for b in fork_overhead warmup startup reconfigure parsers; do ../$(PY) $$b.py || exit 1; done

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
# (README, "Try it on Linux"): .objc/libforksafety.so and friends.
emulation: objc-deps $(VENV)/.installed
	$(PY) tests/objc/build.py .objc

docs: $(VENV)/.installed
	cd docs && ../$(PY) -c "from objcprefork._defaults import markdown; print(markdown(), end='')" > classes.md

# Installs what the real-runtime tests build with when missing and we may:
# GCC's Objective-C compiler (gobjc), GNUstep Foundation, and clang, cmake,
# ninja and robin-map for GNUstep's libobjc2 (built from ../shared/vendor);
# clang-19 and its sanitizer runtimes for make sanitize.
OBJC_PACKAGES := gobjc libgnustep-base-dev clang cmake ninja-build robin-map-dev \
  clang-19 libclang-rt-19-dev
objc-deps:
	@if echo "int main(void){return 0;}" | gcc -x objective-c -o /dev/null - -lobjc 2>/dev/null \
	   && /sbin/ldconfig -p | grep -q libgnustep-base && command -v clang >/dev/null \
	   && test -f /usr/include/tsl/robin_map.h && command -v ninja >/dev/null \
	   && test -f "$$(clang-19 --print-file-name=libclang_rt.asan-x86_64.so 2>/dev/null)"; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	   echo "installing $(OBJC_PACKAGES) with apt-get"; \
	   apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(OBJC_PACKAGES) >/dev/null; \
	else echo "note: some of $(OBJC_PACKAGES) missing and apt-get not usable here; the real-runtime tests will skip"; fi

$(VENV)/.installed: $(SOURCES)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools wheel
	OBJCPREFORK_REQUIRE_NATIVE=1 $(PY) -m pip install -q --no-build-isolation '.[test]'
	touch $@

clean:
	rm -rf $(VENV) $(TOOLS) $(SANITIZE_VENV) build dist *.egg-info
