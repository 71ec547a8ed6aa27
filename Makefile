# dihkit: `make tour` runs the guided tour, `make test` the full test suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: tour test lint format lab teachers benchmark clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

tour: $(STAMP)
	$(BIN)/dihkit tour

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -n 2 -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/

teachers: $(STAMP)  # rebuild the bundled teachers (about 30 minutes on 2 CPU cores)
	DIHKIT=$(BIN)/dihkit bash data/teachers/build.sh

benchmark: $(STAMP)
	$(BIN)/dihkit benchmark --models resnet8 resnet20 resnet56

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
