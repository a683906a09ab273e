# One-command entry points. Each target creates the virtual environment it needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
POT := config/locale/acuse.pot

.PHONY: install demo test fuzz lint bench catalogs clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/acuse demo

# The IMAP tests need Dovecot; install it when missing (Debian's dovecot-imapd).
test: $(STAMP)
	@command -v dovecot >/dev/null 2>&1 || { apt-get update && apt-get install -y --no-install-recommends dovecot-imapd; }
	$(BIN)/pytest

# Benchmarks start Dovecot, so like the tests they need it and root. Each writes its section of
# benchmarks/RESULTS.md. At the issue's sizes the whole run takes tens of minutes; BENCH_SCALE
# (for example BENCH_SCALE=0.01) shrinks every size for a quick check. The reconciliation
# benchmark also creates and drops its own database on the PostgreSQL server named by
# ACUSE_BENCH_POSTGRES (default postgres@127.0.0.1:5432), and is skipped there when none answers.
bench: $(STAMP)
	@command -v dovecot >/dev/null 2>&1 || { apt-get update && apt-get install -y --no-install-recommends dovecot-imapd; }
	$(BIN)/python benchmarks/ingest.py
	$(BIN)/python benchmarks/idle_poll.py
	$(BIN)/python benchmarks/reconciliation.py
	$(BIN)/python benchmarks/send_import.py
	$(BIN)/python benchmarks/memory.py

# Property-based fuzzing of the MIME walker, the certificate text parser and the send-log
# reader with far more examples than `make test` runs; expect tens of minutes.
fuzz: $(STAMP)
	HYPOTHESIS_PROFILE=fuzz ACUSE_FUZZ_MUTATIONS=2000 $(BIN)/pytest -q -p no:cacheprovider tests/test_fuzz.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy config monitor reconcile acuse

# Re-extract the message ids, merge them into every .po and compile the .mo files. Running it
# again without code changes changes no file: the .pot is replaced only when more than its
# creation date differs. New or changed ids arrive untranslated or fuzzy, which
# tests/test_catalog.py rejects until someone translates them.
catalogs: $(STAMP)
	$(BIN)/pybabel extract --project=acuse --add-comments=TRANSLATORS: --sort-by-file \
		-F babel.cfg -o $(POT).new .
	@if [ -f $(POT) ] && diff -q -I '^"POT-Creation-Date: ' $(POT) $(POT).new >/dev/null; \
		then rm $(POT).new; else mv $(POT).new $(POT); fi
	$(BIN)/pybabel update --ignore-pot-creation-date --ignore-obsolete -D acuse -i $(POT) -d config/locale
	$(BIN)/pybabel compile --statistics -D acuse -d config/locale

clean:
	rm -rf $(VENV) build dist *.egg-info
