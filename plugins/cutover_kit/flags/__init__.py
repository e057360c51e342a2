"""Feature flags: the absolute flag state, its stores (flagd file, Unleash) and evaluation."""
