"""Bytes and header words to text: charsets with fallbacks, transfer encodings, RFC 2047."""

from __future__ import annotations

import binascii
import codecs
import re
from email.header import decode_header

_FOLD_RE = re.compile(r"\r?\n(?=[ \t])")
_WS_RE = re.compile(r"\s+")
_B64_JUNK_RE = re.compile(rb"[^A-Za-z0-9+/=]+")
_QP_TAIL_RE = re.compile(rb"=(?:[0-9A-Fa-f]|\r)?\Z")


def unfold_header(value: str) -> str:
    """Undo RFC 5322 folding and drop stray line breaks."""
    if "\n" not in value and "\r" not in value:
        return value
    value = _FOLD_RE.sub("", value)
    return value.replace("\r", "").replace("\n", " ")


def _normalise_space(value: str) -> str:
    return _WS_RE.sub(" ", value).strip()


def _codec_name(charset: str | None) -> str | None:
    """A Python codec name for a MIME charset, or None when there is no usable one."""
    if not charset:
        return None
    name = charset.strip().strip("\"'").lower()
    if not name:
        return None
    # Text labelled latin-1 is very often cp1252 in practice, and both agree wherever
    # the label is right.
    if name in ("iso-8859-1", "iso8859-1", "latin-1", "latin1", "iso_8859-1"):
        return "cp1252"
    try:
        info = codecs.lookup(name)
    except (LookupError, ValueError, TypeError):
        return None
    # "base64", "rot13" and friends are codecs but not text encodings.
    if not getattr(info, "_is_text_encoding", True):
        return None
    return info.name


def _decode_bytes(data: bytes, charset: str | None, *, final: bool = True) -> tuple[str, bool]:
    """Decode body bytes; returns (text, used_fallback). ``final=False`` drops a cut tail."""
    codec = _codec_name(charset)
    fallback = charset is not None and bool(charset.strip()) and codec is None
    if codec == "ascii":
        # 8-bit text labelled us-ascii is mislabelled; guess like for unlabelled text.
        codec = None
    if codec is None or codec == "utf-8":
        try:
            return _incremental(data, "utf-8", "strict", final), fallback
        except UnicodeDecodeError:
            pass
        if codec is None and not fallback:
            # No charset at all and not utf-8: legacy Western mail is the likely case.
            return _incremental(data, "cp1252", "replace", final), False
        return _incremental(data, "utf-8", "replace", final), fallback
    try:
        return _incremental(data, codec, "replace", final), False
    except Exception:  # a broken codec must not stop parsing
        return _incremental(data, "utf-8", "replace", final), True


def _incremental(data: bytes, codec: str, errors: str, final: bool) -> str:
    if final:
        return data.decode(codec, errors)
    decoder = codecs.getincrementaldecoder(codec)(errors)
    text = decoder.decode(data, final=False)
    if not isinstance(text, str):  # pragma: no cover - guarded by _codec_name
        raise TypeError(codec)
    return text


def _b64decode(data: bytes) -> bytes:
    data = _B64_JUNK_RE.sub(b"", data)
    # Padding in the middle (concatenated chunks) or a cut end: decode what is whole.
    data = data[: len(data) - len(data) % 4]
    try:
        return binascii.a2b_base64(data)
    except (binascii.Error, ValueError):
        out = bytearray()
        for start in range(0, len(data), 4):
            try:
                out += binascii.a2b_base64(data[start : start + 4])
            except (binascii.Error, ValueError):
                continue
        return bytes(out)


def _cte_decode(data: bytes, cte: str | None) -> bytes:
    kind = (cte or "").strip().lower()
    if kind == "base64":
        return _b64decode(data)
    if kind == "quoted-printable":
        return binascii.a2b_qp(_QP_TAIL_RE.sub(b"", data))
    return data


def decode_partial(data: bytes, *, cte: str | None, charset: str | None) -> str:
    """Decode a body part that may be cut at any byte; never raises."""
    try:
        text, _ = _decode_bytes(_cte_decode(data, cte), charset, final=False)
    except Exception:  # last resort: nothing about the input may raise
        return data.decode("utf-8", "replace")
    return text


def _header_text(raw: str, name: str, defects: list[str]) -> str:
    """Raw header value to text: 8-bit bytes decoded, folding undone, RFC 2047 not yet."""
    value = unfold_header(raw)
    if value.isascii():
        return value
    data = value.encode("utf-8", "surrogateescape")
    defects.append(f"8bit-header:{name}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", "replace")


def _decode_words(value: str, name: str, defects: list[str]) -> str:
    """Decode RFC 2047 encoded words, surviving unknown charsets and bad encodings."""
    if "=?" not in value:
        return value
    try:
        chunks = decode_header(value)
    except Exception:
        defects.append(f"bad-encoded-word:{name}")
        return value
    out: list[str] = []
    for chunk, charset in chunks:
        if isinstance(chunk, str):
            out.append(chunk)
        elif charset is None or charset == "unknown-8bit":
            # decode_header hands back unencoded runs as raw-unicode-escape bytes.
            out.append(chunk.decode("raw-unicode-escape", "replace"))
        else:
            text, fell_back = _decode_bytes(chunk, charset)
            if fell_back:
                defects.append(f"charset-fallback:{charset}")
            out.append(text)
    return "".join(out)
