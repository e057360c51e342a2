"""Stage 15's post-launch report: a run record (record.py) built from what a cutover run left in
XCom (collect.py) and Prometheus (series.py), rendered as HTML (html.py) with PNG charts
(charts.py, altair + vl-convert-python), lessons learned from the facts (lessons.py). No Airflow
import anywhere in this package; the task that gathers the facts is ``stages/post_launch.py``."""
