"""Tradepost on Airflow: the nightly full pass, and orders every five minutes.

Each task is one `tradepost` command (BashOperator): exit 0 is success, any other code fails the
task (3: some SKUs or orders failed and stay due; 1: an error, the message on stderr). Commands
are scheduler-friendly: no prompts, no traceback, JSON output with --json. The machine running
the tasks needs `pip install tradepost`, the project at /project, and the secrets tradepost.yaml
names in its environment (an Airflow connection or a secrets backend exporting them).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow import DAG
from airflow.operators.bash import BashOperator

DEFAULTS = {"retries": 2, "retry_delay": timedelta(minutes=5)}

with DAG(
    dag_id="tradepost_full_pass",
    schedule="0 3 * * *",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULTS,
) as full_pass:
    # The changes go to `tradepost worker`s in 8 shards; this task waits and prints the summary.
    BashOperator(
        task_id="apply",
        bash_command="tradepost apply -c /project/tradepost.yaml --shards 8 --json",
        execution_timeout=timedelta(hours=6),
    )

with DAG(
    dag_id="tradepost_orders",
    schedule="*/5 * * * *",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULTS,
) as orders:
    pull = BashOperator(
        task_id="pull",
        bash_command="tradepost orders pull -c /project/tradepost.yaml",
        execution_timeout=timedelta(minutes=10),
    )
    push = BashOperator(
        task_id="push",
        bash_command="tradepost orders push -c /project/tradepost.yaml",
        execution_timeout=timedelta(minutes=10),
    )
    pull >> push
