"""The driver error tree. Library exceptions are translated into these at the transport seam.

DriverError
├── DriverTimeout          the device did not answer in time
├── DriverConnectionError  no connection to the endpoint (refused, reset, unreachable)
├── DriverProtocolError    the device answered with a Modbus exception or a malformed frame
└── DecodeError            a payload or register block could not be turned into readings
"""


class DriverError(Exception):
    """Base of every error a driver reports."""


class DriverTimeout(DriverError):
    """The device did not answer within its timeout."""


class DriverConnectionError(DriverError):
    """The endpoint cannot be reached."""


class DriverProtocolError(DriverError):
    """The device answered with an exception reply or a malformed frame."""

    def __init__(self, message: str, exception_code: int | None = None) -> None:
        super().__init__(message)
        self.exception_code = exception_code


class DecodeError(DriverError):
    """A payload could not be decoded into readings or events."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
