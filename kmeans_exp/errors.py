"""Errors a user can fix: each message is one line naming the key, file or value at fault."""


class KMeansExpError(Exception):
    """Base class: the message alone is shown to the user, without a traceback."""


class ConfigError(KMeansExpError):
    """A configuration value that the schema accepts by type but not by range or combination."""


class DataError(KMeansExpError):
    """A data file that is missing, unreadable, malformed or not what it claims to be."""


class TrackingError(KMeansExpError):
    """The MLflow tracking store cannot be reached or written."""
