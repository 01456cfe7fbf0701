# make demo: the crash and the fix, side by side.   make test: the whole suite.
# Both set themselves up: GCC's Objective-C compiler and GNUstep Foundation
# through apt when missing and allowed (root), and a virtualenv in .venv with
# objcprefork installed from this tree (a real, non-editable install).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SOURCES := setup.py pyproject.toml src/_objcprefork.c $(wildcard objcprefork/*.py objcprefork/*/*.py objcprefork/data/*) objcprefork.pth objcprefork.start

.PHONY: test demo objc-deps docs clean

test: objc-deps $(VENV)/.installed
	cd tests && ../$(VENV)/bin/python -m pytest -p no:cacheprovider $(PYTEST_ARGS)

demo: objc-deps $(VENV)/.installed
	cd tests && ../$(PY) demo.py

docs: $(VENV)/.installed
	cd docs && ../$(PY) -c "from objcprefork._defaults import markdown; print(markdown(), end='')" > classes.md

# Installs gobjc and libgnustep-base-dev when they are missing and we may.
objc-deps:
	@if echo 'int main(void){return 0;}' | gcc -x objective-c -o /dev/null - -lobjc 2>/dev/null \
	   && ls /usr/lib/libgnustep-base.so* /usr/lib/*/libgnustep-base.so* >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	   echo "installing GCC's Objective-C compiler and GNUstep Foundation with apt-get"; \
	   apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gobjc libgnustep-base-dev >/dev/null; \
	else echo "note: gobjc or libgnustep-base-dev missing and apt-get not usable here; the real-runtime tests will skip"; fi

$(VENV)/.installed: $(SOURCES)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools wheel
	OBJCPREFORK_REQUIRE_NATIVE=1 $(PY) -m pip install -q --no-build-isolation '.[test]'
	touch $@

clean:
	rm -rf $(VENV) build dist *.egg-info
