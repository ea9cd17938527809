"""Server-sent events read back from a relayed byte stream: one frame splitter for every
assembler (the proxy's chat stream, the Responses API's event stream)."""

from __future__ import annotations

__all__ = ["SSEReader"]


class SSEReader:
    """Feed raw bytes as they arrive; each complete event's joined ``data:`` payload goes
    to ``_event``. Events end with a blank line (``\\n\\n`` or ``\\r\\n\\r\\n``); a
    partial event waits for the rest of its bytes."""

    def __init__(self) -> None:
        self.buf = b""

    def feed(self, data: bytes) -> None:
        self.buf += data
        while True:
            for sep in (b"\n\n", b"\r\n\r\n"):
                i = self.buf.find(sep)
                if i >= 0:
                    break
            else:
                return
            event, self.buf = self.buf[:i], self.buf[i + len(sep):]
            payload = b"\n".join(line[5:].lstrip() for line in event.splitlines()
                                 if line.startswith(b"data:"))
            if payload:
                self._event(payload)

    def _event(self, payload: bytes) -> None:
        raise NotImplementedError
