"""Synthetic data: samplers (registered, working on stacked members), objective terms and α
schedules. Every module of this package is imported with it, so a new sampler, term or schedule
is one file here that registers itself (plus its test)."""
import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
