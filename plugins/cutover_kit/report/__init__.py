"""Stage 15's post-launch report: a run record (record.py) built from what a cutover run left in
XCom (collect.py) and Prometheus (series.py), rendered as HTML (page.py) with PNG charts
(charts.py, altair + vl-convert-python), lessons learned from the facts (lessons.py). No Airflow
import anywhere in this package; the task that gathers the facts is ``stages/post_launch.py``.

No module here is named like a standard-library module (no ``html.py``): Airflow imports every
file of the plugins folder as a top-level module named after the file, so a ``html.py`` would
replace the standard library's ``html`` for the whole process (seen: Great Expectations failing
with "module 'html' has no attribute '_replace_charref'"); a unit test holds this."""
