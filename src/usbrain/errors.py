"""Errors a user can cause. The CLI prints their message on one line and exits with code 2."""


class UsbrainError(Exception):
    """Base class of every user-caused error; the message names the file and the fix."""


class InputError(UsbrainError):
    """An input file is missing, unreadable or not what the command needs."""


class OutputExistsError(UsbrainError):
    """An output path exists and ``--overwrite`` was not given."""


class ConfigError(UsbrainError):
    """A configuration value is unknown, mistyped or impossible."""


class ShapeMismatchError(InputError, ValueError):
    """Volumes compared voxel by voxel are not on one grid (their shapes differ)."""


class EmptyReferenceError(InputError, ValueError):
    """A metric needs a nonempty reference mask (e.g. a relative lesion volume) and got none."""


def problems_error(header: str, problems: list[str]) -> InputError:
    """One :class:`InputError` listing every problem found (duplicates once), one per line."""
    listing = "\n  ".join(dict.fromkeys(problems))
    return InputError(f"{header}:\n  {listing}")
