# dihkit: `make tour` runs the notebook sequence and writes the HTML book, `make test` the full
# test suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PROFILE ?= classroom
JS_DIR := $(VENV)/share/dihkit-js
JS_STAMP := $(JS_DIR)/.fetched

.PHONY: tour book timings js test test-browser lint format lab teachers benchmark wheel clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

# The offline book's JavaScript (require.js, the widgets HTML manager, MathJax), pinned npm
# packages fetched once at install time; without them the book still works, minus widgets/math.
$(JS_STAMP): | $(STAMP)
	$(BIN)/python -m dihkit.book.assets $(JS_DIR)
	touch $(JS_STAMP)

js: $(STAMP)  # fetch the book's JavaScript again
	$(BIN)/python -m dihkit.book.assets $(JS_DIR) --force
	touch $(JS_STAMP)

tour: $(STAMP) $(JS_STAMP)  # the sequence into runs/tour/, then runs/tour/book/index.html
	$(BIN)/python -m dihkit.book tour --profile $(PROFILE) --out runs/tour

book: $(STAMP)  # re-execute the committed notebooks (classroom) and write them back with outputs
	$(BIN)/python -m dihkit.book refresh --profile classroom

timings: $(STAMP)  # time the sequence in the smoke profile for the notebooks' title cells
	$(BIN)/python -m dihkit.book time --profile smoke

# The browser tests (pytest -m browser) run too: JupyterLab and the offline book in Debian's
# chromium, skipped where it is missing.
test: $(STAMP) $(JS_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -n 2 -q

test-browser: $(STAMP) $(JS_STAMP)  # only the browser tests; screenshots in runs/browser-tests/
	$(BIN)/python -m pytest -m browser -n 2 -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/ $$(test "$$(id -u)" = 0 && echo --allow-root)

teachers: $(STAMP)  # rebuild the bundled teachers (about 30 minutes on 2 CPU cores)
	DIHKIT=$(BIN)/dihkit bash data/teachers/build.sh

benchmark: $(STAMP)
	$(BIN)/dihkit benchmark --models resnet8 resnet20 resnet56

# The wheel (dist/): the package with the embedded data, bundled teachers, experiment files and
# notebooks under dihkit/bundle/ (setup.py copies them into the build folder); offline, no
# build isolation. `pip install dist/dihkit-*.whl` then works without a checkout.
wheel: $(STAMP)
	$(BIN)/python -m pip wheel --no-deps --no-build-isolation --quiet -w dist .
	@ls -l dist/*.whl

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache build dist dihkit/bundle
