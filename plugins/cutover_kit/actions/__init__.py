"""Actions that tasks (stages/) and the gate trigger (triggers/) both take: restore blue now (flags
to Rails, then traffic to blue), apply a flag state everywhere, check the emergency stop.

No Airflow import anywhere below this package (a test walks it): the callers build the clients
from their hooks and pass them in (:class:`~cutover_kit.actions.rollback.Levers`), and failures
are plain exceptions (``actions.emergency``) that the stages translate into Airflow ones.
"""
