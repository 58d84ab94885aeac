"""Synthetic data: samplers (registered, working on stacked members), objective terms and α
schedules. Their registries import every module of this package before their first lookup, so
a new sampler, term or schedule is one file here that registers itself (plus its test)."""
