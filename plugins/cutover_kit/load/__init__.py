"""Stage 6 building blocks (no Airflow): run Locust against one color, read its output into
per-step figures, find each color's knee, judge green's capacity against blue's, chart both."""
