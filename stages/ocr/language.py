"""Offline language identification for short on-screen text, with the script as fallback.

lingua's n-gram models ship in its wheel (no download). Short strings ("TEST", a URL) often
leave it unsure; then the dominant Unicode script decides: kana means Japanese, Hangul Korean,
Han Chinese, Cyrillic Russian, and so on, and Latin script falls back to English.
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from functools import cached_property

SCRIPT_LANGUAGE = {
    "HIRAGANA": "ja",
    "KATAKANA": "ja",
    "HANGUL": "ko",
    "CJK": "zh",
    "CYRILLIC": "ru",
    "GREEK": "el",
    "ARABIC": "ar",
    "HEBREW": "he",
    "DEVANAGARI": "hi",
    "THAI": "th",
    "LATIN": "en",
}
DEFAULT_LANGUAGE = "en"


def dominant_script(text: str) -> str | None:
    scripts: Counter[str] = Counter()
    for ch in text:
        if ch.isalpha():
            script = unicodedata.name(ch, "").split(" ")[0]
            if script in SCRIPT_LANGUAGE:
                scripts[script] += 1
    if not scripts:
        return None
    if scripts["HIRAGANA"] or scripts["KATAKANA"]:
        return "HIRAGANA"  # Japanese mixes kana with Han
    return scripts.most_common(1)[0][0]


class LanguageIdentifier:
    def __init__(self, languages: list[str], min_confidence: float) -> None:
        self.languages = languages
        self.min_confidence = min_confidence

    @cached_property
    def detector(self):
        from lingua import IsoCode639_1, Language, LanguageDetectorBuilder

        chosen = []
        for code in self.languages:
            try:
                chosen.append(Language.from_iso_code_639_1(getattr(IsoCode639_1, code.upper())))
            except (AttributeError, ValueError) as exc:
                raise ValueError(f"FRAMEWISE_OCR_LANGUAGES: unknown language {code!r}") from exc
        return LanguageDetectorBuilder.from_languages(*chosen).build()

    def load(self) -> None:
        """Load lingua's models now (about 4 s, once per process) by identifying a short text,
        which loads what every later short text needs. Loaded inside a job's first OCR call,
        they held the GIL and stalled the worker's event loop and its Kafka heartbeats.
        (``with_preloaded_language_models`` loads more: about 200 MiB more here.)"""
        self.detector.compute_language_confidence_values("Framewise reads text")

    def confident(self, text: str) -> str | None:
        """ISO 639-1 code of ``text`` if the identifier is sure enough, else ``None``."""
        if dominant_script(text) is None:
            return None
        values = self.detector.compute_language_confidence_values(text)
        if values and values[0].value >= self.min_confidence:
            return values[0].language.iso_code_639_1.name.lower()
        return None

    def identify(self, text: str) -> str:
        return self.confident(text) or script_language(text)


def script_language(text: str) -> str:
    """The language a text's dominant script suggests (English without letters)."""
    script = dominant_script(text)
    return SCRIPT_LANGUAGE[script] if script else DEFAULT_LANGUAGE


def block_language(texts: list[str], languages: list[str | None]) -> str:
    """A block's language: the confident line languages weighted by text length, else the
    script of the whole block."""
    weights: Counter[str] = Counter()
    for text, language in zip(texts, languages, strict=True):
        if language:
            weights[language] += len(text)
    if weights:
        return weights.most_common(1)[0][0]
    return script_language(" ".join(texts))
