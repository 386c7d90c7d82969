"""AWS event-stream framing (``application/vnd.amazon.eventstream``), as sagemaker-runtime's
``InvokeEndpointWithResponseStream`` sends it.

A message is: total length (4 bytes), headers length (4), CRC32 of those 8 bytes, headers,
payload, CRC32 of everything before. A header is: name length (1), name, type 7 (string), value
length (2), value. Big-endian throughout.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Iterator, Mapping

_STRING = 7


def _headers(headers: Mapping[str, str]) -> bytes:
    out = bytearray()
    for name, value in headers.items():
        raw_name, raw_value = name.encode(), value.encode()
        out += struct.pack(">B", len(raw_name)) + raw_name
        out += struct.pack(">BH", _STRING, len(raw_value)) + raw_value
    return bytes(out)


def encode_message(headers: Mapping[str, str], payload: bytes) -> bytes:
    encoded = _headers(headers)
    total = 12 + len(encoded) + len(payload) + 4
    prelude = struct.pack(">II", total, len(encoded))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    body = prelude + encoded + payload
    return body + struct.pack(">I", zlib.crc32(body))


def payload_part(data: bytes) -> bytes:
    """One ``PayloadPart`` event carrying ``data``."""
    return encode_message(
        {
            ":event-type": "PayloadPart",
            ":content-type": "application/octet-stream",
            ":message-type": "event",
        },
        data,
    )


def model_stream_error(message: str, code: str = "ModelStreamError") -> bytes:
    """A ``ModelStreamError`` exception event (an error after streaming began)."""
    return encode_message(
        {
            ":exception-type": "ModelStreamError",
            ":content-type": "application/json",
            ":message-type": "exception",
        },
        json.dumps({"Message": message, "ErrorCode": code}).encode(),
    )


def decode_messages(data: bytes) -> Iterator[tuple[dict[str, str], bytes]]:
    """Split a buffer of whole messages into (headers, payload), checking both CRCs."""
    offset = 0
    while offset < len(data):
        total, header_length, prelude_crc = struct.unpack_from(">III", data, offset)
        if zlib.crc32(data[offset : offset + 8]) != prelude_crc:
            raise ValueError("event-stream prelude CRC mismatch")
        end = offset + total
        (message_crc,) = struct.unpack_from(">I", data, end - 4)
        if zlib.crc32(data[offset : end - 4]) != message_crc:
            raise ValueError("event-stream message CRC mismatch")
        headers: dict[str, str] = {}
        cursor = offset + 12
        stop = cursor + header_length
        while cursor < stop:
            name_length = data[cursor]
            name = data[cursor + 1 : cursor + 1 + name_length].decode()
            cursor += 1 + name_length
            kind, value_length = struct.unpack_from(">BH", data, cursor)
            if kind != _STRING:
                raise ValueError(f"event-stream header type {kind} is not supported")
            cursor += 3
            headers[name] = data[cursor : cursor + value_length].decode()
            cursor += value_length
        yield headers, data[stop : end - 4]
        offset = end
