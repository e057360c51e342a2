"""Stage 4's pure decisions (no Airflow, no I/O): are the rules loaded and healthy, did a test
alert reach its receiver, does every dashboard query answer, and how Alertmanager's answer joins
the SLO gate's verdict. The stage (cutover_kit.stages.monitoring) and the gate's trigger do the I/O."""
