"""Separate what a reply says from the older mail it quotes."""

from __future__ import annotations

import re

_ATTRIBUTION_START_RE = re.compile(
    r"^\s*(?:On|Am|Le|El|Il|Op|Em|Den|Dne|W dniu|På)\s", re.IGNORECASE
)
_ATTRIBUTION_RE = re.compile(
    r"^\s*(?:On|Am|Le|El|Il|Op|Em|Den|Dne|W dniu|På)\s.{0,400}?"
    r"\b(?:wrote|writes|schrieb|a\s+écrit|escribió|ha\s+scritto|schreef|escreveu|skrev|"
    r"napsal|napisał)\b[^\n]{0,200}?:\s*$",
    re.IGNORECASE | re.DOTALL,
)
_WROTE_LINE_RE = re.compile(
    r"\b(?:wrote|writes|schrieb|a\s+écrit|escribió|ha\s+scritto|schreef|escreveu|skrev)"
    r"\b[^\n]{0,120}:\s*$",
    re.IGNORECASE,
)
_ORIGINAL_RE = re.compile(
    r"^\s*-{2,}\s*(?:Original\s+Message|Ursprüngliche\s+Nachricht|Message\s+d'origine|"
    r"Mensaje\s+original|Messaggio\s+originale|Oorspronkelijk\s+bericht|"
    r"Originalmeddelande|Oprindelig\s+meddelelse|Opprinnelig\s+melding|"
    r"Alkuperäinen\s+viesti|Forwarded\s+message|Weitergeleitete\s+Nachricht|"
    r"Message\s+transféré|Mensaje\s+reenviado)\s*-*\s*$"
    r"|^\s*Begin\s+forwarded\s+message:\s*$",
    re.IGNORECASE,
)
_FROM_LINE_RE = re.compile(
    r"^\s*\*?(?:From|De|Von|Van|Da|Från|Fra|Od|Lähettäjä)\s*:\*?\s*\S", re.IGNORECASE
)
_SENT_LINE_RE = re.compile(
    r"^\s*\*?(?:Sent|Date|Envoyé|Gesendet|Datum|Enviado|Fecha|Inviato|Data|Verzonden|"
    r"Skickat|Sendt|Lähetetty|Odesláno|Wysłano|To|Subject|An|Betreff|À|Objet|Para|Asunto)"
    r"\s*:",
    re.IGNORECASE,
)
_HEADERISH_RE = re.compile(
    _FROM_LINE_RE.pattern + "|" + _SENT_LINE_RE.pattern + r"|^\s*\*?Cc\s*:", re.IGNORECASE
)
_SEPARATOR_RE = re.compile(r"^\s*_{8,}\s*$")
_SIGNATURE_RE = re.compile(r"^--[ \t]?$")
_CANDIDATE_RE = re.compile(
    r"[ \t]*(?:>|(?:On|Am|Le|El|Il|Op|Em|Den|Dne|W dniu|På)\s|--|_{8}|Begin\s|"
    r"\*?(?:From|De|Von|Van|Da|Från|Fra|Od|Lähettäjä)\s*:)",
    re.IGNORECASE,
)


def _next_nonblank(lines: list[str], start: int, limit: int) -> int | None:
    for i in range(start, min(len(lines), start + limit)):
        if lines[i].strip():
            return i
    return None


def _is_outlook_header(lines: list[str], i: int) -> bool:
    if not _FROM_LINE_RE.match(lines[i]):
        return False
    return any(_SENT_LINE_RE.match(line) for line in lines[i + 1 : i + 5])


def _attribution_end(lines: list[str], i: int) -> int | None:
    """Index of the last line of an "On <date>, <name> wrote:" header starting at line i."""
    if not _ATTRIBUTION_START_RE.match(lines[i]):
        return None
    joined = lines[i]
    # Clients wrap long attributions, so the header may run over up to three lines.
    for last in range(i, min(len(lines), i + 3)):
        if last > i:
            joined = joined + " " + lines[last].strip()
        if len(joined) > 500:
            return None
        if _ATTRIBUTION_RE.match(joined):
            return last
    return None


def _block_start(lines: list[str], i: int) -> bool:
    """Whether line i opens unprefixed older mail (Outlook style) that runs to the end."""
    line = lines[i]
    if _ORIGINAL_RE.match(line):
        return True
    if _SEPARATOR_RE.match(line):
        nxt = _next_nonblank(lines, i + 1, 3)
        return nxt is not None and _FROM_LINE_RE.match(lines[nxt]) is not None
    return _is_outlook_header(lines, i)


def _is_quote(line: str) -> bool:
    return line.lstrip().startswith(">")


def split_quoted(text: str) -> tuple[str, str]:
    """Split text into (new text, quoted older mail); a trailing signature leaves new text.

    Lines quoted with ">" go to the quoted side wherever they are, so interleaved answers
    stay new text. A reply header ("On ... wrote:", "-----Original Message-----",
    Outlook's From:/Sent: block) followed by unprefixed text starts quoted mail that runs
    to the end.
    """
    lines = text.replace("\r\n", "\n").split("\n")
    new: list[str] = []
    quoted: list[str] = []
    in_signature = False
    candidate = _CANDIDATE_RE.match
    i = 0
    count = len(lines)
    while i < count:
        line = lines[i]
        # One cheap match rules out almost every line before the costlier checks.
        if candidate(line):
            if _is_quote(line):
                quoted.append(line)
                i += 1
                continue
            last = _attribution_end(lines, i)
            if last is not None:
                nxt = _next_nonblank(lines, last + 1, 3)
                if nxt is not None and _is_quote(lines[nxt]):
                    quoted.extend(lines[i : last + 1])
                    i = last + 1
                    continue
                quoted.extend(lines[i:])
                break
            if _block_start(lines, i):
                # Bottom-posters keep the Outlook Express header above ">" quotes and
                # answer below them; only then is the rest not all quoted.
                end = i + 1
                while end < count and (not lines[end].strip() or _HEADERISH_RE.match(lines[end])):
                    end += 1
                if end < count and _is_quote(lines[end]):
                    quoted.extend(lines[i:end])
                    i = end
                    continue
                quoted.extend(lines[i:])
                break
            if _SIGNATURE_RE.match(line):
                in_signature = True
        if line.rstrip().endswith(":") and _WROTE_LINE_RE.search(line):
            nxt = _next_nonblank(lines, i + 1, 3)
            if nxt is not None and _is_quote(lines[nxt]):
                quoted.append(line)
                i += 1
                continue
        if not in_signature:
            new.append(line)
        i += 1
    return _trim_lines(new), _trim_lines(quoted)


def _trim_lines(lines: list[str]) -> str:
    return "\n".join(line.rstrip() for line in lines).strip("\n")


# --------------------------------------------------------------------- body selection
