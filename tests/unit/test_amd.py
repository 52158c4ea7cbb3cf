"""The answering-machine detector (sip/amd.py) on generated signals: its rules one by one."""

from __future__ import annotations

import math
import random
from array import array

import pytest

from sip.amd import (
    FRAME_BYTES,
    AmdParams,
    Detector,
    detect,
)
from sip.audio import tone


def quiet(seconds: float) -> bytes:
    return bytes(2 * round(seconds * 8000))


def talk(seconds: float, seed: int = 1, level: float = 3000.0) -> bytes:
    """Speech-like audio: noise under a syllable envelope (4 a second, dipping between syllables as
    speech does), never a pure tone."""
    rng = random.Random(seed)
    n = round(seconds * 8000)
    envelope = (0.03 + 0.97 * abs(math.sin(math.pi * 4 * i / 8000)) for i in range(n))
    return array("h", (max(-32767, min(32767, round(rng.gauss(0, level) * e))) for e in envelope)).tobytes()


def words(count: int, word: float = 0.25, gap: float = 0.12) -> bytes:
    return b"".join(talk(word, seed=i) + quiet(gap) for i in range(count))


def noise(pcm: bytes, level: float, seed: int = 9) -> bytes:
    rng = random.Random(seed)
    samples = memoryview(pcm).cast("h")
    return array("h", (max(-32767, min(32767, s + round(rng.gauss(0, level)))) for s in samples)).tobytes()


def names(pcm: bytes, wait: bool = False, **params: int) -> list[str]:
    return [v.answered_by for v in detect(pcm, AmdParams(**params), wait_for_end=wait)]


def test_a_short_hello_then_waiting_is_a_person() -> None:
    verdicts = detect(quiet(0.4) + talk(0.5) + quiet(3))
    assert [v.answered_by for v in verdicts] == ["human"]
    # 800 ms of silence after the word (within a frame)
    assert 0.9 * 1000 + 800 - 20 <= verdicts[0].at_ms <= 0.9 * 1000 + 800 + 20


def test_a_few_words_are_still_a_person() -> None:
    assert names(words(3) + quiet(2)) == ["human"]


def test_more_words_than_allowed_is_a_machine() -> None:
    verdict = detect(words(6) + quiet(2))[0]
    assert verdict.answered_by == "machine_start"
    assert "words" in verdict.reason


def test_a_long_greeting_is_a_machine_after_the_greeting_time() -> None:
    verdict = detect(talk(4) + quiet(2))[0]
    assert verdict.answered_by == "machine_start" and verdict.reason == "long greeting"
    assert 1500 <= verdict.at_ms <= 2000  # 1500 ms of speech; the dips between syllables are not speech
    assert names(talk(4) + quiet(2), greeting_ms=3000, max_word_ms=2500) == ["machine_start"]


def test_silence_from_the_answer_is_unknown_not_a_machine() -> None:
    verdict = detect(quiet(4))[0]
    assert (verdict.answered_by, verdict.at_ms) == ("unknown", 2500)


def test_nothing_decided_within_the_analysis_time_is_unknown() -> None:
    # words and gaps that never add up to a rule: 1 word, then pauses shorter than after-greeting silence
    pattern = (talk(0.06) + quiet(0.5)) * 20
    verdict = detect(pattern, AmdParams(analysis_ms=3000))[0]
    assert (verdict.answered_by, verdict.at_ms) == ("unknown", 3000)


@pytest.mark.parametrize("hz", [440, 1000, 1400, 2000])
def test_the_beep_after_a_greeting_ends_it(hz: int) -> None:
    pcm = talk(3) + quiet(0.6) + tone(hz, 0.4, 0.3) + quiet(3)
    first, last = detect(pcm, wait_for_end=True)
    assert first.answered_by == "machine_start"
    assert last.answered_by == "machine_end_beep"
    assert last.beep_ms is not None and abs(last.beep_ms - 3600) <= 20
    assert 4000 <= last.at_ms <= 4040  # told when the tone stops: a message may start then


def test_a_held_tone_before_any_machine_verdict_is_no_beep() -> None:
    # a person's sung "Hellooo" can be as pure as a beep: before machine_start it is just speech
    assert names(talk(0.3) + tone(1000, 0.4, 0.3) + quiet(3), wait=True) == ["human"]


def test_a_beep_too_short_is_not_one() -> None:
    pcm = talk(3) + quiet(0.6) + tone(1000, 0.08, 0.3) + quiet(3)
    assert names(pcm, wait=True) == ["machine_start", "machine_end_silence"]


def test_a_greeting_that_ends_in_silence() -> None:
    verdicts = detect(talk(3) + quiet(3), wait_for_end=True)
    assert [v.answered_by for v in verdicts] == ["machine_start", "machine_end_silence"]
    assert abs(verdicts[1].at_ms - (3000 + 1200)) <= 60  # the last syllable fades out early


def test_without_waiting_the_first_machine_verdict_is_the_last() -> None:
    assert names(talk(3) + quiet(0.6) + tone(1000, 0.4) + quiet(2)) == ["machine_start"]


def test_a_greeting_that_never_ends_times_out() -> None:
    verdicts = detect(talk(12) + quiet(1), AmdParams(timeout_ms=8000, max_word_ms=20000), wait_for_end=True)
    assert [v.answered_by for v in verdicts] == ["machine_start", "machine_end_other"]
    assert verdicts[1].at_ms == 8000


def test_a_fax_answer_tone_is_a_fax() -> None:
    verdict = detect(tone(2100, 3, 0.3))[0]
    assert verdict.answered_by == "fax" and verdict.machine
    assert 500 <= verdict.at_ms <= 540


def test_a_noisy_line_still_tells_a_person_from_a_machine() -> None:
    # line noise well above the fixed threshold (RMS 256): the floor follows it
    assert names(noise(quiet(0.5) + talk(0.5) + quiet(3), 700)) == ["human"]
    assert names(noise(quiet(0.5) + talk(3) + quiet(2), 700)) == ["machine_start"]
    assert names(noise(quiet(3), 700)) == ["unknown"]


def test_frames_of_any_size_give_the_same_verdicts() -> None:
    pcm = talk(3) + quiet(0.5) + tone(1200, 0.3, 0.3) + quiet(2)
    whole = detect(pcm, wait_for_end=True)
    detector = Detector(wait_for_end=True)
    for start in range(0, len(pcm), FRAME_BYTES):
        detector.feed(pcm[start : start + FRAME_BYTES])
    assert detector.verdicts == whole
    assert detector.done and detector.feed(quiet(0.02)) is None  # nothing after the last verdict
