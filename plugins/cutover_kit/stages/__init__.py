"""Task callables, one module per cutover stage. The DAG file wires them; the decisions they take
are delegated to the pure modules one level up (plan, slo, gate, smoke, outcome)."""
