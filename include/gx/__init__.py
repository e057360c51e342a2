"""Great Expectations suites for stage 2 (database preparation), written as code.

Nothing here imports great_expectations at module level: `import great_expectations` costs
6-9 s and ~230 MB, so only the functions that build GX objects import it, when a task runs.
"""
