"""Task callables, one module per task group of the `cutover` DAG, named like the group without
its number (``stage_02_database_preparation`` -> ``database_preparation.py``; the tasks outside
any group -> ``verdict.py``; a DAG test holds every task to this rule), plus one module per other
DAG (``emergency_rollback.py``, ``smoke.py``). ``_shared.py`` holds the Airflow-side helpers
several stages use. The DAG files wire them; the decisions are delegated to the pure modules one
level up (plan, slo, gate, smoke, outcome), and the actions that the gate trigger takes too live
in cutover_kit.actions, without Airflow."""
