"""Airflow notifiers (BaseNotifier subclasses) used as DAG and task callbacks."""
