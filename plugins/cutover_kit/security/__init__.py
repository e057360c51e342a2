"""Stage 7 building blocks (no Airflow): passive HTTP checks keyed by OWASP ZAP baseline rule ids,
the route surface of both colors, error leakage probes, scanner adapters (schemathesis, wapiti,
sqlmap, bandit, npm audit) and the judge, all speaking one normalised finding."""
