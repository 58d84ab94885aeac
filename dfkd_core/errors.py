"""The exceptions users see: one base class, one subclass per kind of bad input."""


class DfkdError(Exception):
    """Base class of every error the engine raises for bad input; the CLI and the UI
    print its message in one line instead of a traceback."""


class ConfigError(DfkdError, ValueError):
    """A hyperparameter or a choice that cannot be used, e.g.
    "The 'epochs' parameter must be an int in [1, 100000]. Got -3 instead." """


class ConfigErrors(ConfigError):
    """Every problem of a configuration at once (a link or a config file with several bad
    values): `problems` lists them, and the message puts one per line."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class DatasetError(DfkdError):
    """A dataset that cannot be found, downloaded or parsed; names the file and the line."""


class ModelError(DfkdError):
    """A teacher or student file that is not a usable model, or a model that cannot do
    what was asked (e.g. a gradient sampler given a black-box teacher)."""


class RegistryError(DfkdError, KeyError):
    """A name that is not registered: "No sampler 'x' registered (have: a, b)"."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain
        return str(self.args[0]) if self.args else ""


class QueryBudgetSpent(ModelError):
    """A black-box teacher's query budget ran out: a run that meets it mid-training ends
    'interrupted' with the students trained so far (the engine's loop catches it)."""
