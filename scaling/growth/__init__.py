"""Growth (SPEC §6): the rule (`rule`), the pass over the pools that overflowed (`run`), and what a
pool's admin page says of its next growth (`outlook`)."""
