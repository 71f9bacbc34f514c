"""Exceptions the lab raises, so callers (and pytest) can tell "cannot run here" from "broken"."""


class LabUnavailable(RuntimeError):
    """This machine cannot run the lab; the message says what is missing and how to get it."""


class LabError(RuntimeError):
    """The lab could run but a step failed (the message carries the command and its stderr)."""
