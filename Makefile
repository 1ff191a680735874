# Every target sets itself up: a fresh clone needs only `make run` or `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
WHEELS := .cache/wheels

.PHONY: setup run test test-spark lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	# Test references shipped as package data: lenscat's catalogue (the seed must equal it) and
	# three real DR8 sweep FITS files inside the desitarget wheel (the converter must round-trip them).
	$(BIN)/pip install --quiet --no-deps lenscat==1.1.3
	$(BIN)/pip download --quiet --no-deps desitarget==4.4.0 -d $(WHEELS)
	touch $@

setup: $(STAMP)
	$(BIN)/python -m stronglens.extensions

# The main job: embedded sky (once), dbt build, quality check. Reports: warehouse/reports/.
run: setup
	$(BIN)/stronglens run

lint: setup
	$(BIN)/ruff check python tests bench
	$(BIN)/ruff format --check python tests bench
	# The dbt templater compiles the project, which opens a (throw-away) warehouse.
	mkdir -p .cache/lint-home
	STRONGLENS_HOME=$(CURDIR)/.cache/lint-home $(BIN)/sqlfluff lint models
	$(BIN)/sqlfluff lint --templater placeholder expectations

test: setup lint
	$(BIN)/pytest

# The dbt project on Spark (pyspark local[2] + dbt-spark, ~630 MB installed once): the catalogue
# marts must equal the DuckDB build row for row. Separate from `make test`: it takes minutes.
SPARK_STAMP := $(VENV)/.spark-stamp
$(SPARK_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e '.[test,spark]'
	touch $@

test-spark: setup $(SPARK_STAMP)
	$(BIN)/pytest -m spark -s tests/test_spark_parity.py

bench: setup
	$(BIN)/python -m bench.catalog

clean:
	rm -rf target logs warehouse .pytest_cache
