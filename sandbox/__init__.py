"""Local rehearsal sandbox: real PostgreSQL, Redis, HAProxy, Prometheus and two demo apps.

Everything runs as plain processes on 127.0.0.1, started and stopped by PID (see
:mod:`sandbox.launcher`). Nothing here is imported by DAGs at parse time.
"""
