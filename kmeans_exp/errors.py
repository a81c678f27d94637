"""Errors a user can fix: each message is one line naming the key, file or value at fault."""


class KMeansExpError(Exception):
    """Base class: the message alone is shown to the user, without a traceback."""


class ConfigError(KMeansExpError, ValueError):
    """A setting out of range or of the wrong kind (also what the engine raises on bad args)."""


class DataError(KMeansExpError):
    """A data file that is missing, unreadable, malformed or not what it claims to be."""


class TrackingError(KMeansExpError):
    """The MLflow tracking store cannot be reached or written."""


def first_line(error: BaseException, causes: bool = False) -> str:
    """The first line of an error's message (its type's name if empty); with ``causes``, each
    cause's first line appended (Hydra and OmegaConf put the useful part there)."""
    text = str(error).strip()
    line = text.splitlines()[0] if text else type(error).__name__
    if causes and error.__cause__ is not None:
        line += ": " + first_line(error.__cause__, causes=True)
    return line
