
"""A test sampler: prior draws times two (written by tests/test_engine_new_part.py)."""
from .samplers import Sampler, register_sampler


@register_sampler
class DoubledPriorSampler(Sampler):
    name = "doubled_prior_test"
    description = "prior draws times two"

    def sample_group(self, students, n):
        return self._prior_draws(n) * 2.0
