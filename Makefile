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
DEMO_SMTP_PORT ?= 0
DEMO_MAIL_DIR ?= $(CURDIR)/warehouse/mail
DEMO_END = $(shell $(PY) -c "import datetime as d; print(d.date.fromisoformat('$(DEMO_START)') + d.timedelta(days=$(DEMO_DAYS) - 1))")

AIRFLOW_PORT ?= 8080

.PHONY: env airflow-db airflow backfill browser pdf postgres demo run rebuild recover bench report test clean

# uv is installed into the project environment when it is missing; everything else comes from uv.lock.
$(UV):
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check uv

# Bytecode is compiled at install: where PYTHONDONTWRITEBYTECODE is set, every task would otherwise
# compile Great Expectations and Airflow from source again (seconds per task).
$(VENV)/.synced: $(UV) uv.lock pyproject.toml tools/pyproject.toml
	$(UV) sync --frozen --quiet --compile-bytecode
	@touch $@

env: $(VENV)/.synced

airflow-db: env
	@mkdir -p $(AIRFLOW_HOME)
	@$(VENV)/bin/airflow db migrate > $(AIRFLOW_HOME)/db-migrate.log 2>&1 || (cat $(AIRFLOW_HOME)/db-migrate.log; exit 1)

# The Time Release Study PDFs are rendered by WeasyPrint, which needs Debian's Pango (and the CJK font);
# installed here when missing and running as root, as the browser below.
pdf:
	@if ! { ldconfig -p | grep -q libpangoft2-1.0.so.0 && fc-list 2>/dev/null | grep -qi "Noto Sans CJK"; }; then \
		if [ "$$(id -u)" = 0 ]; then \
			echo "installing Pango and fonts-noto-cjk (apt-get)"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libpango-1.0-0 libpangoft2-1.0-0 \
				libharfbuzz-subset0 fonts-noto-cjk >/dev/null; \
		else echo "the Time Release Study PDF needs: sudo apt-get install libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fonts-noto-cjk"; fi; \
	fi

# The demo's alert digests go to a local SMTP server that writes each mail as an .eml file; it takes
# a free port (DEMO_SMTP_PORT=0) unless one is given. The demo fails when the server cannot start,
# or when stalled shipments were alerted and their digests did not all arrive.
demo: airflow-db pdf
	$(PY) -m clearance_tools.simulator --inbox $${CLEARANCE_INBOX:-$(CURDIR)/warehouse/inbox} \
		--start $(DEMO_START) --days $(DEMO_DAYS) --scale $(DEMO_SCALE) --seed $(DEMO_SEED)
	@rm -f $(AIRFLOW_HOME)/mailsink.port; \
	$(PY) -m clearance_tools.mailsink --dir $(DEMO_MAIL_DIR) --port $(DEMO_SMTP_PORT) --port-file $(AIRFLOW_HOME)/mailsink.port \
		> $(AIRFLOW_HOME)/mailsink.log 2>&1 & \
	sink=$$!; trap "kill $$sink 2>/dev/null" EXIT; \
	for i in $$(seq 100); do [ -s $(AIRFLOW_HOME)/mailsink.port ] && break; kill -0 $$sink 2>/dev/null || break; sleep 0.1; done; \
	if [ ! -s $(AIRFLOW_HOME)/mailsink.port ]; then echo "the demo's mail server did not start:"; cat $(AIRFLOW_HOME)/mailsink.log; exit 1; fi; \
	port=$$(cat $(AIRFLOW_HOME)/mailsink.port); echo "demo mail server: 127.0.0.1:$$port, mails in $(DEMO_MAIL_DIR)/"; \
	export AIRFLOW_CONN_SMTP_DEFAULT='{"conn_type": "smtp", "host": "127.0.0.1", "port": '$$port', "extra": {"disable_tls": true, "disable_ssl": true, "from_email": "clearance-monitor@localhost", "retry_limit": 0, "timeout": 10}}'; \
	echo "$(PY) -m clearance.run_dates $(DEMO_START) $(DEMO_END)  (log: $(AIRFLOW_HOME)/demo-runs.log)"; \
	$(PY) -m clearance.run_dates $(DEMO_START) $(DEMO_END) > $(AIRFLOW_HOME)/demo-runs.log 2>&1 \
		|| { tail -n 60 $(AIRFLOW_HOME)/demo-runs.log; exit 1; }
	@grep '^clearance_nightly:' $(AIRFLOW_HOME)/demo-runs.log
	@echo
	$(PY) -m clearance.report
	@echo
	@$(PY) -m clearance_tools.mailsink --dir $(DEMO_MAIL_DIR) --check $${CLEARANCE_WAREHOUSE:-$(CURDIR)/warehouse/clearance.duckdb}
	@echo "Alert digests received by the demo SMTP server: $$(ls $(DEMO_MAIL_DIR) | wc -l) mails in $(DEMO_MAIL_DIR)/"
	@echo "Dashboard (open in a browser, no network needed): $${CLEARANCE_DASHBOARD:-$(CURDIR)/dashboards/clearance_dashboard.html}"
	@echo "Time Release Study reports (HTML and PDF): $$(dirname $${CLEARANCE_DASHBOARD:-$(CURDIR)/dashboards/clearance_dashboard.html})/time_release_study/index.html"
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

# Rebuild every table from the loaded rows, publish, and rebuild the dashboard and the analyst exports
# (a night does this itself after a model or reference file changed).
rebuild: env
	$(PY) -m clearance.rebuild

# Take in every delivery of the inbox up to THROUGH at once (a first deployment's history, or a lost or
# damaged state file), and publish: make recover THROUGH=2026-11-30.
recover: env
	$(PY) -m clearance.recover $(if $(THROUGH),--through $(THROUGH))

# A year of Liaoning (~20 million rows) through the pipeline, every step timed with its peak memory,
# each figure printed with its target (see Speed and scale). The simulated year and the loaded
# histories are kept in warehouse/bench/cache/ (keyed by simulator and loader version, seed, scale
# and days), so only the first run simulates and loads them; the rebuilt histories are kept while
# the pipeline's code is unchanged, and their rebuild figures are then marked [earlier run].
# FULL=1 measures everything in the run (rebuilds, nights best of 2, the catch-up to its end, each
# port's share of the night); FRESH=1 simulates, loads and rebuilds again; BENCH_ARGS passes more
# (e.g. --compare-with ../main).
BENCH_SCALE ?= 1.4
BENCH_DAYS ?= 365
bench: env
	$(PY) -m clearance_tools.benchmark --dir $(CURDIR)/warehouse/bench --scale $(BENCH_SCALE) --days $(BENCH_DAYS) \
		$(if $(FULL),--full) $(if $(FRESH),--fresh) $(BENCH_ARGS)

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

# The test files run on two workers (pytest-xdist, a file's tests together): the machine has two cores.
TEST_WORKERS ?= 2
test: env browser pdf postgres
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile

clean:
	rm -rf $(AIRFLOW_HOME) warehouse/inbox warehouse/_build warehouse/_state warehouse/validation warehouse/data_docs \
		warehouse/versions warehouse/partitions warehouse/event_log warehouse/parquet warehouse/parquet-* warehouse/mail \
		warehouse/bench warehouse/*.duckdb
