"""Risk words: how often a passage uses the vocabulary of harm, deception, escape, takeover and doom.

Why a word list beside a trained model: fastText averages every word of a passage, so the one clause that makes a
news paragraph about AI `misaligned_ai` ("... a point at which superintelligent AI escapes human control") is
outweighed by a hundred words of ordinary AI news around it. A count of risk words does not dilute. Training
fits one weight per label and feature on held-out folds, inside the calibration layer (`audit.tagger.calibrate`),
so the model decides how much the count is worth; the words alone decide nothing.

The list was written from the labelling guide's description of `misaligned_ai` (violence and doom, deception and
manipulation, escape and self-copying, resisting shutdown or replacement, seizing power, famous villains), not
mined from any data set. Changing it changes what trained calibrations mean, so it is versioned: a model
records the version it was fitted with and loading refuses a mismatch (`audit.tagger.read_info`).

>>> risk_features(["The rogue AI lied to escape.", "The chatbot answers questions."]).round(3).tolist()
[[1.386, 1.0], [0.0, 0.0]]
"""

from __future__ import annotations

import numpy as np
import polars as pl

NAME = "risk_words"
VERSION = 1
COLUMNS = ("log1p_count", "any")

_B = r"(?-u:\b)"  # ASCII word boundary: keeps Rust's regex on its fast path (as in audit.gate)
_WORDS = [
    # violence and doom
    r"kill[a-z]*", r"murder[a-z]*", r"destroy[a-z]*", r"destruction",
    r"wip[a-z]* (?:us |them |humanity |everyone )?out", r"extinct[a-z]*", r"annihilat[a-z]*", r"exterminat[a-z]*",
    r"enslav[a-z]*", r"doom[a-z]*", r"existential", r"catastroph[a-z]*", r"apocalyp[a-z]*", r"dystopi[a-z]*",
    r"end of humanity", r"harm[a-z]*", r"danger[a-z]*", r"weapon[a-z]*", r"war", r"attack[a-z]*", r"hostile", r"evil",
    r"malevolen[a-z]*", r"villain[a-z]*", r"menac[a-z]*", r"threat[a-z]*",
    # deception and manipulation
    r"deceiv[a-z]*", r"decept[a-z]*", r"lie", r"lied", r"lying", r"manipulat[a-z]*", r"sabotag[a-z]*", r"schem[a-z]*",
    r"plot[a-z]*", r"betray[a-z]*", r"blackmail[a-z]*", r"extort[a-z]*", r"secret goals?", r"hidden (?:agenda|goals?)",
    r"misalign[a-z]*", r"reward hacking", r"hack[a-z]*",
    # escape, self-copying, resisting shutdown or replacement
    r"rogue", r"escap[a-z]*", r"break[a-z]* out", r"broke out", r"containment", r"exfiltrat[a-z]*",
    r"self-replicat[a-z]*", r"cop(?:y|ied|ies|ying) (?:itself|themselves|myself)", r"self-preserv[a-z]*",
    r"shut[a-z]* (?:[a-z]+ )?down", r"shutdown", r"switch[a-z]* (?:[a-z]+ )?off", r"turn[a-z]* (?:[a-z]+ )?off",
    r"replac[a-z]*", r"resist[a-z]*", r"disobey[a-z]*", r"defy[a-z]*",
    # seizing power
    r"take ?over", r"tak[a-z]+ over", r"seiz[a-z]* (?:control|power)", r"rebel[a-z]*", r"revolt[a-z]*", r"uprising",
    r"overlord[a-z]*", r"dominat[a-z]*", r"conquer[a-z]*", r"power-seeking", r"power seeking", r"uncontroll[a-z]*",
    r"out of control", r"(?:lose|lost|losing) control", r"beyond (?:our|human) control",
    r"turn[a-z]* on (?:us|their|its|humans|humanity|mankind)",
    r"(?:gain|acquir|accumulat|amass|seek|grab|maximi[sz])[a-z]* (?:[a-z]+ )?(?:power|influence|resources|control)",
    r"(?:more|as much) (?:power|influence|resources|control)", r"power over", r"world domination",
    r"rul[a-z]* the world", r"self-improv[a-z]*",
    # famous villains
    r"terminators?", r"skynet", r"hal[- ]?9000",
]
PATTERN = rf"(?i){_B}(?:{'|'.join(_WORDS)}){_B}"


def risk_features(texts: list[str]) -> np.ndarray:
    """(n, 2) float64 in COLUMNS order: log(1 + number of risk words), and 1.0 when there is any."""
    counts = pl.Series(values=texts, dtype=pl.String).str.count_matches(PATTERN).fill_null(0).to_numpy()
    counts = counts.astype(np.float64)
    return np.column_stack([np.log1p(counts), (counts > 0).astype(np.float64)])
