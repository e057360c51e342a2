"""A minimal PNG reader for the chart tests (8-bit RGB/RGBA, no interlace: what vl-convert writes),
so a test can count the pixels of a series' color without an imaging library."""

from __future__ import annotations

import struct
import zlib

SIGNATURE = b"\x89PNG\r\n\x1a\n"


def chunks(data: bytes):
    assert data[:8] == SIGNATURE, "not a PNG"
    at = 8
    while at < len(data):
        length, kind = struct.unpack(">I4s", data[at:at + 8])
        yield kind, data[at + 8:at + 8 + length]
        at += 12 + length


def size(data: bytes) -> tuple[int, int]:
    kind, header = next(chunks(data))
    assert kind == b"IHDR"
    return struct.unpack(">II", header[:8])


def pixels(data: bytes) -> list[tuple[int, ...]]:
    header = dict(chunks(data))[b"IHDR"]
    width, height, depth, color_type, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and color_type in (2, 6) and interlace == 0, (depth, color_type, interlace)
    channels = 4 if color_type == 6 else 3
    raw = zlib.decompress(b"".join(body for kind, body in chunks(data) if kind == b"IDAT"))
    stride = width * channels
    rows, previous, at = [], bytearray(stride), 0
    for _ in range(height):
        kind, line = raw[at], bytearray(raw[at + 1:at + 1 + stride])
        at += 1 + stride
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up, corner = previous[i], previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 255
            elif kind == 2:
                line[i] = (line[i] + up) & 255
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 255
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                line[i] = (line[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 255
        rows.append(line)
        previous = line
    return [tuple(row[i:i + 3]) for row in rows for i in range(0, stride, channels)]


def count_near(data: bytes, rgb: tuple[int, int, int], tolerance: int = 40) -> int:
    return sum(1 for pixel in pixels(data) if all(abs(a - b) <= tolerance for a, b in zip(pixel, rgb)))
