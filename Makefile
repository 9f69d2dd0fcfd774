# The project's interface. On a machine with only python3, pip and make:
#   make demo      simulate two weeks of exports, run the nightly DAG for each day under Airflow
#   make test      the test suite
#   make airflow   the local deployment in the foreground (scheduler, DAG processor, triggerer,
#                  API server on 127.0.0.1:$(AIRFLOW_PORT)); Ctrl-C stops it
#   make run DATE=YYYY-MM-DD             one night, through the running deployment if one is up
#   make backfill FROM=YYYY-MM-DD TO=YYYY-MM-DD   business dates, inclusive, in the running deployment
SHELL := /bin/bash
VENV := $(CURDIR)/.venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv

# A local Airflow home with SQLite, inside the project (git-ignored).
export AIRFLOW_HOME ?= $(CURDIR)/.airflow
export AIRFLOW__CORE__DAGS_FOLDER := $(CURDIR)/dags
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export UV_PROJECT_ENVIRONMENT := $(VENV)
# With SQLite every command beside a running deployment waits for the database lock up to a minute.
ifeq ($(AIRFLOW__DATABASE__SQL_ALCHEMY_CONN),)
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS ?= clearance.airflow_db.SQLITE_CONNECT_ARGS
endif

# The demo's two weeks of single-window exports (business dates, Beijing time).
DEMO_START ?= 2026-11-01
DEMO_DAYS ?= 14
DEMO_SCALE ?= 0.1
DEMO_SEED ?= 20261101
DEMO_SMTP_PORT ?= 8025
DEMO_MAIL_DIR ?= $(CURDIR)/warehouse/mail
DEMO_END = $(shell $(PY) -c "import datetime as d; print(d.date.fromisoformat('$(DEMO_START)') + d.timedelta(days=$(DEMO_DAYS) - 1))")

AIRFLOW_PORT ?= 8080

.PHONY: env airflow-db airflow backfill browser postgres demo run rebuild bench simulate report test clean

# uv is installed into the project environment when it is missing; everything else comes from uv.lock.
$(UV):
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check uv

# Bytecode is compiled at install: where PYTHONDONTWRITEBYTECODE is set, every task would otherwise
# compile Great Expectations and Airflow from source again (seconds per task).
$(VENV)/.synced: $(UV) uv.lock pyproject.toml
	$(UV) sync --frozen --quiet --compile-bytecode
	@touch $@

env: $(VENV)/.synced

airflow-db: env
	@mkdir -p $(AIRFLOW_HOME)
	@$(VENV)/bin/airflow db migrate > $(AIRFLOW_HOME)/db-migrate.log 2>&1 || (cat $(AIRFLOW_HOME)/db-migrate.log; exit 1)

# The demo's alert digests go to a local SMTP server that writes each mail as an .eml file.
demo: airflow-db
	$(PY) -m clearance.simulator --inbox $${CLEARANCE_INBOX:-$(CURDIR)/warehouse/inbox} \
		--start $(DEMO_START) --days $(DEMO_DAYS) --scale $(DEMO_SCALE) --seed $(DEMO_SEED)
	@$(PY) -m clearance.mailsink --dir $(DEMO_MAIL_DIR) --port $(DEMO_SMTP_PORT) > $(AIRFLOW_HOME)/mailsink.log 2>&1 & \
	sink=$$!; trap "kill $$sink" EXIT; sleep 2; \
	export AIRFLOW_CONN_SMTP_DEFAULT='{"conn_type": "smtp", "host": "127.0.0.1", "port": $(DEMO_SMTP_PORT), "extra": {"disable_tls": true, "disable_ssl": true, "from_email": "clearance-monitor@localhost", "retry_limit": 0, "timeout": 10}}'; \
	echo "$(PY) -m clearance.run_dates $(DEMO_START) $(DEMO_END)  (log: $(AIRFLOW_HOME)/demo-runs.log)"; \
	$(PY) -m clearance.run_dates $(DEMO_START) $(DEMO_END) > $(AIRFLOW_HOME)/demo-runs.log 2>&1 \
		|| { tail -n 60 $(AIRFLOW_HOME)/demo-runs.log; exit 1; }
	@grep '^clearance_nightly:' $(AIRFLOW_HOME)/demo-runs.log
	@echo
	$(PY) -m clearance.report
	@echo
	@echo "Alert digests received by the demo SMTP server: $$(ls $(DEMO_MAIL_DIR) | wc -l) mails in $(DEMO_MAIL_DIR)/"
	@echo "Dashboard (open in a browser, no network needed): $(CURDIR)/dashboards/clearance_dashboard.html"
	@echo "Warehouse: $(CURDIR)/warehouse/clearance.duckdb — query it with: .venv/bin/python -m clearance.query \"SELECT ...\""

# The local deployment, in the foreground: Ctrl-C stops every component. SQLite in $(AIRFLOW_HOME)
# unless AIRFLOW__DATABASE__SQL_ALCHEMY_CONN says otherwise (see README, "Deployment").
airflow: env
	AIRFLOW_PORT=$(AIRFLOW_PORT) $(PY) -m clearance.deployment serve

# Rerun or catch up one business date by hand: make run DATE=2026-11-20. Through the running
# deployment when one is up, else in this process; fails at once when the delivery is absent.
run: env
	@test -n "$(DATE)" || (echo "usage: make run DATE=YYYY-MM-DD"; exit 2)
	$(PY) -m clearance.run_dates $(DATE)

# Business dates FROM..TO (Beijing, inclusive) as an Airflow backfill of the running deployment;
# prints each night's outcome, fails if any night failed.
backfill: env
	@test -n "$(FROM)" -a -n "$(TO)" || (echo "usage: make backfill FROM=YYYY-MM-DD TO=YYYY-MM-DD"; exit 2)
	$(PY) -m clearance.deployment backfill $(FROM) $(TO)

report: env
	$(PY) -m clearance.report

# Rebuild every table from the loaded rows and publish (a night does this itself after a model or
# reference file changed).
rebuild: env
	$(PY) -m clearance.rebuild

# A year of Liaoning (~20 million rows) through the pipeline, every step timed with its peak memory;
# about 25 minutes and 9 GB of disk in warehouse/bench/.
BENCH_SCALE ?= 1.4
BENCH_DAYS ?= 365
bench: env
	$(PY) -m clearance.benchmark --dir $(CURDIR)/warehouse/bench --scale $(BENCH_SCALE) --days $(BENCH_DAYS)

# The dashboard test opens the page in headless Chromium, with a CJK font for the Chinese labels
# (Debian packages; installed here when missing and running as root, as on CI).
browser:
	@if ! { command -v chromium >/dev/null && fc-list 2>/dev/null | grep -qi "Noto Sans CJK"; }; then \
		if [ "$$(id -u)" = 0 ]; then \
			echo "installing chromium and fonts-noto-cjk (apt-get)"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-cjk >/dev/null; \
		else echo "the dashboard test needs: sudo apt-get install chromium fonts-noto-cjk"; fi; \
	fi

# The deployment test runs Airflow on PostgreSQL too: Debian's postgresql, started by the test itself
# in a temporary folder (installed here when missing and running as root, as on CI).
postgres:
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
		if [ "$$(id -u)" = 0 ]; then \
			echo "installing postgresql (apt-get)"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
		else echo "the PostgreSQL test needs: sudo apt-get install postgresql"; fi; \
	fi

test: env browser postgres
	$(PY) -m pytest

clean:
	rm -rf $(AIRFLOW_HOME) warehouse/inbox warehouse/_build warehouse/_state warehouse/validation warehouse/data_docs \
		warehouse/versions warehouse/partitions warehouse/event_log warehouse/parquet warehouse/parquet-* warehouse/mail \
		warehouse/bench warehouse/*.duckdb
