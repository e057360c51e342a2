"""Cutover kit: plan, scenario and judging logic for moving traffic from blue to green."""
