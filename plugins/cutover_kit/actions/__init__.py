"""Actions taken by tasks (stages/) and, for the reflex rollback, by the gate trigger (triggers/):
restore blue now (flags to Rails, then traffic to blue), apply a flag state everywhere, and the
emergency-stop refusals the stages apply (the trigger reads the stop itself through hooks.levers).

No Airflow import anywhere below this package (a test walks it): the callers build the clients
from their hooks and pass them in (:class:`~cutover_kit.actions.rollback.Levers`), and failures
are plain exceptions (``actions.emergency``) that the stages translate into Airflow ones.
"""
